"""dvc.yaml's code deps cannot drift: each stage depends on exactly its module and the package modules that imports
(emotion_classifier.codedeps walks them, as the training run id's code version does)."""

import dataclasses
import shutil

import pytest
import yaml

from emotion_classifier import codedeps

from .conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def code_deps(stage: str) -> list[str]:
    return sorted(d.split()[0] for d in map(str, STAGES[stage]["deps"]) if d.startswith(("src/", "stages/")))


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "check_params"])
def test_stage_code_deps_are_exactly_what_its_module_imports(stage):
    expected = sorted([f"stages/{stage}.py", *codedeps.dvc_deps(f"stages.{stage}")])
    assert code_deps(stage) == expected, f"dvc.yaml stage {stage}: code deps should be {expected}"


def test_no_stage_depends_on_another_stages_code():
    for stage in STAGES:
        others = [d for d in code_deps(stage) if "/stages/" in f"/{d}" and stage not in d and "__init__" not in d]
        assert not others, f"{stage} depends on {others}"


def test_the_import_walk_follows_function_level_imports_subpackages_and_registries():
    train = codedeps.modules("stages.train")
    assert {"training.loop", "losses.bce", "architectures.textcnn", "model_dir.model",
            "training.distill"} <= train
    scoring = codedeps.modules("stages.evaluate")
    assert "batching" in scoring and not any(m.startswith("training") for m in scoring)  # no training code
    assert not any(m.startswith(("architectures", "model_dir.model")) for m in codedeps.modules("stages.compare"))
    assert sorted(m for m in train | scoring if codedeps.exempt(m)) == [  # train's settings: params.resolve
        "params", "params.jobs", "params.members", "params.sections", "params.tree"]
    # the schema sits below the training code: params reads the registries of architectures and losses only
    reach, todo = set(), ["params"]
    while todo:
        if (m := todo.pop()) not in reach:
            reach.add(m)
            todo += codedeps._imports(m)
    assert {"losses", "architectures", "params.members"} <= reach
    assert not any(m.startswith(("training", "stages")) for m in reach)


def test_an_edit_of_the_params_package_reruns_train_and_keeps_its_reuse_unless_a_setting_changes(tmp_path,
                                                                                                 monkeypatch):
    """The params package decides every effective train setting (recipes, auto, members): a train dep in dvc.yaml.
    The run id holds what it decides by value (the whole TrainJob), not its source: an edit that changes no setting
    (a new section, a message) keeps each cached model; one that does changes the run id through the settings."""
    from emotion_classifier.params import ModelSpec, TrainJob
    from emotion_classifier.training import identity

    assert "src/emotion_classifier/params" in code_deps("train")
    assert all("params" not in d for d in code_deps("evaluate"))
    pkg = tmp_path / "emotion_classifier"
    shutil.copytree(codedeps.PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "PKG", pkg)
    before = identity.code_version()
    params = pkg / "params/sections.py"
    params.write_text(params.read_text() + "\n# a new section's schema, say\n")
    assert identity.code_version() == before
    # run_identity hashes these fields, each (a field added here must be added there: this list fails first)
    assert [f.name for f in dataclasses.fields(TrainJob)] == ["seed", "model", "train", "loss", "policy", "teacher"]
    assert [f.name for f in dataclasses.fields(ModelSpec)] == ["name", "arch", "encoder", "max_length", "mask_words"]


def test_the_run_id_code_version_covers_a_subpackage_edit(tmp_path, monkeypatch):
    from emotion_classifier.training import identity

    pkg = tmp_path / "emotion_classifier"
    shutil.copytree(codedeps.PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codedeps, "PKG", pkg)
    before = identity.code_version()
    (pkg / "stages/compare.py").write_text("# compare's code is not the training's\n")
    assert identity.code_version() == before
    arch = pkg / "architectures/textcnn.py"
    arch.write_text(arch.read_text() + "\n# edited\n")
    assert identity.code_version() != before


def test_paths_py_names_exactly_the_outs_dvc_yaml_declares():
    """Both directions, path by path: every out and metric of dvc.yaml is in paths.OUTS and nothing else is."""
    from emotion_classifier import paths

    declared = [next(iter(o)) if isinstance(o, dict) else o for stage in STAGES.values()
                for kind in ("outs", "metrics") for o in stage.get(kind, [])]
    declared = [d for d in declared if not d.startswith("${")]  # data.prepared_dir: a param
    assert sorted(declared) == sorted(paths.OUTS)
    charts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    files = [p for c in charts for p in ([c] if isinstance(c, str) else next(iter(c.values()))["y"])]
    inside = [f for f in files if not f.startswith(f"{paths.LIVE_DIR}/")]  # DVCLive names its own files
    constants = [v for k, v in vars(paths).items() if k.isupper()]
    named = {v for v in constants if isinstance(v, str)} | {v for d in constants if isinstance(d, dict)
                                                            for v in d.values()}
    assert sorted(set(inside) - named) == []
