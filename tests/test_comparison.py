"""`emotion-compare-all` end to end in a copy of the project: main's members and their ensemble as DVC experiments
on tiny data, one epoch each, then the report with one row each; resumed, kept and stale rows."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from emotion_classifier.architectures import REGISTRY
from emotion_classifier.errors import UserError
from emotion_classifier.experiments.collect import collect
from emotion_classifier.experiments.compare_all import encoder_rows, my_share, plan, report_paths

from .conftest import ROOT, SHARED, copy_repo, tiny_tree
from .test_pipeline_e2e import dvc, dvc_env

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


def test_plan_runs_the_ensembles_last_and_shares_split_it():
    runs = plan(["ensemble", "textcnn", "bilstm_maxpool"], [0, 1], "cmp")
    assert [n for n, _ in runs] == ["cmp-textcnn-s0", "cmp-textcnn-s1", "cmp-bilstm_maxpool-s0",
                                    "cmp-bilstm_maxpool-s1", "cmp-ensemble-s0", "cmp-ensemble-s1"]
    assert runs[0][1] == ["model.name=textcnn", "seed=0"]
    every = plan([*REGISTRY, "ensemble"], [0], "cmp")  # `make compare`'s default: every architecture, then the ensemble
    assert [sets[0] for _, sets in every] == [f"model.name={a}" for a in [*REGISTRY, "ensemble"]]
    halves = my_share(runs, "1/2") + my_share(runs, "2/2")
    assert sorted(halves) == sorted(runs) and len(my_share(runs, "1/2")) == 3
    with pytest.raises(UserError, match="expected k/n"):
        my_share(runs, "3/2")
    with_mpnet = plan(["ensemble", "textcnn", "transformer_finetune"], [0], "cmp", [],
                      encoder_rows(["ensemble", "textcnn", "transformer_finetune"], ["all-mpnet-base-v2"]))
    assert [n for n, _ in with_mpnet] == ["cmp-textcnn-s0", "cmp-transformer_finetune-s0",
                                          "cmp-transformer_finetune-mpnet-s0", "cmp-ensemble-s0"]
    assert with_mpnet[2][1] == ["model.name=transformer_finetune", "model.encoder=all-mpnet-base-v2", "seed=0"]
    with pytest.raises(UserError, match="unknown encoder bert-large; choose from all-MiniLM-L6-v2"):
        encoder_rows(["transformer_finetune"], ["bert-large"])


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_encoder):
    if not (SHARED / "dvc-storage").exists():
        pytest.skip("../shared/dvc-storage is not beside the project")
    d = copy_repo(tmp_path_factory.mktemp("comparison") / "repo")
    p = yaml.safe_load((d / "params.yaml").read_text())
    tiny = tiny_tree(tiny_encoder, "bilstm_maxpool")
    p.update(model={**tiny["model"], "name": p["model"]["name"]}, train=tiny["train"], evaluate=tiny["evaluate"])
    p["train"]["epochs"] = None  # each architecture's recipe, as in the project's params.yaml
    p["data"]["max_examples"] = 60
    p["compare"]["tfidf_max_features"] = 500
    p["evaluate"]["bootstrap_resamples"] = 100
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(git + args, cwd=d, check=True, capture_output=True)
    assert dvc(["remote", "modify", "--local", "storage", "url", str(SHARED / "dvc-storage")], d).returncode == 0
    assert dvc(["pull", "data/raw/goemotions.dvc"], d).returncode == 0
    return d


def compare_all(project, *args):
    own_cache = {"EMOTION_CLASSIFIER_CACHE": str(project.parent / "cache")}  # what the runs reuse: theirs alone
    return subprocess.run([sys.executable, "-m", "emotion_classifier.experiments.compare_all", *args], cwd=project,
                          env={**dvc_env(), **own_cache}, capture_output=True, text=True, check=False, timeout=1200)


ARCHS = ["bilstm_lasttoken", "transformer_finetune", "ensemble"]  # main's members, then their ensemble


def test_the_comparison_runs_resumes_keeps_rows_and_sees_stale_ones(project):
    """Main's two members and their ensemble as DVC experiments, in one command; run again it resumes; a row whose
    experiment is gone is kept; one finished under other params is left out. Every other architecture runs through
    DVC too: textcnn and bilstm_maxpool in test_multi_machine, the feature-extract one in test_experiments_shared.
    The encoder rows (`--encoders`) are planned in test_plan_runs_the_ensembles_last_and_shares_split_it, and every
    architecture trains, tunes and evaluates on a second encoder in test_encoders."""
    quick = ["--seeds", "0", "--architectures", ",".join(ARCHS), "--set", "train.epochs=1", "--encoders", ""]
    r = compare_all(project, *quick)
    log = r.stdout + r.stderr
    (project / "compare.log").write_text(log)
    assert r.returncode == 0, log[-5000:]
    planned = plan(ARCHS, [0], "cmp", ["train.epochs=1"])
    name = {n.split("-", 2)[2].removesuffix("-s0"): n for n, _ in planned}  # a quick look's names carry its tag
    assert set(name) == set(ARCHS)
    names = list(name.values())
    assert f"{len(names)} experiments, 0 finished already, {len(names)} to run" in log
    runs = dict(re.findall(r"=== \[\d+/\d+\] (\S+): (.*?)(?==== \[|\Z)", log, flags=re.S))
    assert sorted(runs) == sorted(names)
    for arch in ARCHS[:2]:  # a single architecture trains itself alone, with its recipe but the explicit epochs
        assert "ensemble member" not in runs[name[arch]]
        assert f"{arch} (seed 0): epochs 1 (train.epochs), loss " in runs[name[arch]]
    ensemble_log = runs[name["ensemble"]]
    assert ensemble_log.count("trained by an earlier run") == 2 and "epoch 1:" not in ensemble_log, ensemble_log

    # a quick look writes its own report, never the full one (issue 49, 4)
    out, chart = report_paths(None, None, ["train.epochs=1"])
    assert out.parent.name.startswith("quick-")
    for committed in ("reports/experiments.json", "reports/experiments.md"):
        assert (project / committed).read_bytes() == (ROOT / committed).read_bytes()
    report = (project / out).read_text()
    lines = [line for line in report.split("## Every experiment")[1].splitlines() if line.startswith("| cmp-")]
    assert sorted(line.split(" | ")[0][2:] for line in lines) == sorted(names)
    assert (project / chart).stat().st_size > 10_000

    rows = {r["name"]: r for r in collect(json.loads(dvc(["exp", "show", "--json"], project).stdout), names)}
    for arch in ARCHS[:2]:
        row = rows[name[arch]]
        assert row["params"]["model.name"] == arch and row["params"]["train.epochs"] == 1
        assert row["metrics"]["metrics/train.json"]["model"] == arch
        assert row["metrics"]["metrics/train.json"]["epochs_run"] == 1
    ens = rows[name["ensemble"]]["metrics"]["metrics/train.json"]
    assert ens["model"] == "ensemble" and ens["members"] == "transformer_finetune + bilstm_lasttoken"
    for exp in names:  # one model each (models/members/ holds its README.txt), the ensemble's second in members/1
        lock = yaml.safe_load(subprocess.run(["git", "show", f"{rows[exp]['rev']}:dvc.lock"], cwd=project,
                                             capture_output=True, text=True, check=True).stdout)
        members = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == "models/members")
        assert (members.get("nfiles", 0) > 1) == exp.endswith("-ensemble-s0"), (exp, members)
    assert dvc(["exp", "apply", name["bilstm_lasttoken"]], project).returncode == 0
    record = json.loads((project / "models/config.json").read_text())["train"]  # the run record
    recipe = yaml.safe_load((project / "params.yaml").read_text())["model"]["bilstm_lasttoken"]["train"]
    assert record["train_settings"] == {**record["train_settings"], **recipe, "epochs": 1}
    subprocess.run(["git", "checkout", "--", "."], cwd=project, check=True)

    again = compare_all(project, *quick)  # resumable
    assert again.returncode == 0 and f"{len(names)} finished already, 0 to run" in again.stdout
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True,
                             check=True).stdout
    assert "params.yaml" not in changed and "dvc.lock" not in changed  # --temp: the workspace stays as it was

    # its refs gone (another session or machine): the row the report kept stands in, checked against this workspace
    assert dvc(["exp", "remove", name["bilstm_lasttoken"]], project).returncode == 0
    kept = compare_all(project, *quick, "--report-only")
    assert kept.returncode == 0 and "not (yet) here" not in kept.stdout, kept.stdout[-3000:] + kept.stderr[-3000:]
    assert f"| {name['bilstm_lasttoken']} | bilstm_lasttoken |" in (project / out).read_text()

    params = (project / "params.yaml").read_text()  # finished under other params: not this run, left out
    (project / "params.yaml").write_text(params.replace("tfidf_max_features: 500", "tfidf_max_features: 400"))
    try:
        stale = compare_all(project, *quick, "--report-only")
    finally:
        (project / "params.yaml").write_text(params)
    assert stale.returncode == 0, stale.stdout[-3000:] + stale.stderr[-3000:]
    assert (f"{name['transformer_finetune']} finished with other settings (params compare.tfidf_max_features 500 "
            "-> 400); left out of the report") in stale.stdout
    assert (f"{name['bilstm_lasttoken']} kept in {out.with_suffix('.json')} is another run (params "
            "compare.tfidf_max_features 500 -> 400)") in stale.stdout


def test_bad_arguments_get_one_line(project):
    for args, says in ((["--architectures", "gru"], "unknown architecture gru"),
                       (["--seeds", "a"], "expected integers"),
                       (["--set", "train.epochs"], "expected KEY=VALUE")):
        r = compare_all(project, *args)
        assert r.returncode != 0 and says in r.stderr, r.stderr
