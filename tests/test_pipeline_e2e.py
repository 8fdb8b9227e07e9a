"""The real pipeline in a copy of the repository: dvc pull from the shared remote, dvc repro."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from emotion_classifier.experiments.collect import flatten

from .conftest import ROOT, SHARED, copy_repo, tiny_tree

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


def dvc_env() -> dict:
    return dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")


def dvc(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=dvc_env(), check=False,
                          capture_output=True, text=True, **kw)


def cached_outputs(repo) -> dict:
    """dvc.lock's md5 of every cached output (cache: false ones are metrics and plots, timings among them)."""
    uncached = set()
    for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            if isinstance(out, dict) and not next(iter(out.values())).get("cache", True):
                uncached.add(next(iter(out)))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for s in lock.values() for o in s.get("outs", []) if o["path"] not in uncached}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not (SHARED / "dvc-storage").exists():
        pytest.skip("../shared/dvc-storage is not beside the project")
    d = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    subprocess.run(["git", "add", "-A"], cwd=d, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], cwd=d, check=True)
    # ../shared is not beside the temp copy: point the remote at it by absolute path.
    assert dvc(["remote", "modify", "--local", "storage", "url", str(SHARED / "dvc-storage")], d).returncode == 0
    r = dvc(["pull", "data/raw/goemotions.dvc"], d)
    assert r.returncode == 0, r.stderr
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["data"]["max_examples"] = 150
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return d


@pytest.fixture(scope="module")
def reproduced(repo, tiny_encoder) -> str:
    """The whole pipeline through `dvc repro`, once per module, on an ensemble of two tiny members: the repo then
    stands up to date. Returns the run's log. Each test that needs it asks for it (none relies on another's run)."""
    p = yaml.safe_load((repo / "params.yaml").read_text())
    tiny = tiny_tree(tiny_encoder, "bilstm_maxpool", epochs=1)
    p["model"] = tiny["model"]
    p["train"] = tiny["train"]
    p["model"]["name"] = "ensemble"  # an ensemble, through DVC
    p["ensemble"]["members"] = [{"model.name": "bilstm_maxpool"}, {"model.name": "bilstm_lasttoken", "seed": 1}]
    p["compare"]["tfidf_max_features"] = 2000
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    r = dvc(["repro"], repo)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def test_prepare_and_analyze(repo):
    r = dvc(["repro", "analyze_dataset"], repo)
    assert r.returncode == 0, r.stdout + r.stderr
    for s in ("train", "dev", "test"):
        assert len(pd.read_parquet(repo / "data/prepared" / f"{s}.parquet")) == 150
    m = json.loads((repo / "metrics/dataset.json").read_text())
    assert m["train.examples"] == 150 and m["test.examples"] == 150 and len(m) <= 5  # a handful as metrics
    stats = json.loads((repo / "plots/dataset/statistics.json").read_text())  # the rest beside the plots
    assert sum(stats[f"train.labels_per_example_{k}"] for k in ("1", "2", "3", "4", "5plus")) == 150
    assert {k: stats[k] for k in m} == m
    for kind in ("counts", "conditional", "jaccard"):
        assert (repo / f"plots/dataset/cooccurrence_{kind}.png").stat().st_size > 10_000

    r = dvc(["status", "prepare", "analyze_dataset"], repo)
    assert "up to date" in r.stdout, r.stdout

    shown = json.loads(dvc(["plots", "show", "--json"], repo).stdout)["data"]
    assert any("Label distribution" in k for k in shown)
    assert sum(k.endswith(".png") for k in shown) >= 3


def test_bad_row_fails_and_keeps_previous_output(repo):
    assert dvc(["repro", "prepare"], repo).returncode == 0
    before = (repo / "data/prepared/train.parquet").read_bytes()
    raw = repo / "data/raw/goemotions/train.tsv"
    raw.chmod(0o644)
    original = raw.read_text()
    lines = original.splitlines()
    lines[9] = "bad label\t28\tzzz1"
    lines[19] = "\t3\tzzz2"
    raw.write_text("\n".join(lines) + "\n")
    try:
        r = dvc(["repro", "prepare"], repo)
    finally:
        raw.write_text(original)
    assert r.returncode != 0
    assert "train.tsv:10: label id 28 is outside 0..27" in r.stdout + r.stderr
    assert (repo / "data/prepared/train.parquet").read_bytes() == before


def test_full_pipeline_with_a_tiny_encoder(repo, reproduced):
    """All six stages through dvc, as a user runs them: dvc.yaml's deps, outs, metrics and plots."""
    log = reproduced  # not a terminal: one line per epoch and stage, no progress-bar frames
    assert "batch/s" not in log and "mean_resizing" not in log, log[-3000:]
    assert "ensemble member 1/2: bilstm_maxpool (seed 0)" in log and "ensemble member 2/2: bilstm_lasttoken" in log
    shown = json.loads(dvc(["metrics", "show", "--json"], repo).stdout)
    files = next(iter(shown.values()))["data"]
    ev = files["metrics/eval.json"]["data"]
    assert {"test_micro_f1", "test_macro_f1", "test_macro_f1_lo", "test_macro_f1_hi", "dev_macro_f1"} <= set(ev)
    assert "model_minus_baseline_macro_f1_p_value" in files["metrics/compare.json"]["data"]
    values = [v for f in files.values() for v in flatten(f["data"]).values()]
    assert len(values) <= 60, len(values)  # scores you can read, not 204 values led by dataset counts
    train = files["metrics/train.json"]["data"]  # an ensemble's: its members and their train time
    assert train["members"] == "bilstm_maxpool + bilstm_lasttoken" and train["train_time_s"] > 0
    assert "best_single_model_dev_macro_f1" in files["metrics/thresholds.json"]["data"]  # the ensemble was tuned
    assert len(json.loads((repo / "models/thresholds.json").read_text())["member_weights"]) == 2
    plots = json.loads(dvc(["plots", "show", "--json"], repo).stdout)["data"]
    for name in ("Training curves", "Dev F1 vs global threshold", "Test F1 per label", "precision-recall",
                 "ROC", "model vs TF-IDF", "confusion_matrices.png", "reliability.png"):
        assert any(name in k for k in plots), (name, list(plots))
    assert "TF-IDF" in (repo / "reports/compare.md").read_text()
    logged = yaml.safe_load((repo / "dvclive/params.yaml").read_text())  # DVCLive's params: what the run resolved
    assert logged["model"] == "bilstm_maxpool" and logged["train"]["epochs"] == 1 and logged["train"]["loss"] == "bce"
    assert "up to date" in dvc(["status"], repo).stdout
    assert "is empty" not in log  # models/members/ of a single model is no empty DVC out (README.txt)
    lock = cached_outputs(repo)
    import shutil

    shutil.rmtree(repo / "models/members/1")  # both members trained again: an empty model cache, no member kept
    fresh_cache = {**dvc_env(), "EMOTION_CLASSIFIER_CACHE": str(repo.parent / "fresh")}
    r = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force", "train"], cwd=repo, capture_output=True,
                       text=True, check=False, env=fresh_cache)
    assert r.returncode == 0 and r.stdout.count("epoch 1:") == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert cached_outputs(repo) == lock  # timings live in metrics/ (uncached): only those may differ


def test_a_change_to_one_stages_code_reruns_only_that_stage(repo, reproduced):
    assert "up to date" in dvc(["status"], repo).stdout
    module = repo / "src/emotion_classifier/stages/compare.py"
    original = module.read_text()
    module.write_text(original + "\n# how compare writes its markdown changed\n")
    try:
        # a stage's status covers it and every stage upstream of it: compare is none of theirs
        assert "up to date" in dvc(["status", "train", "tune_thresholds", "evaluate"], repo).stdout
        assert "src/emotion_classifier/stages/compare.py" in dvc(["status", "compare"], repo).stdout
    finally:
        module.write_text(original)


def test_a_param_of_the_wrong_type_equal_to_the_old_value_is_still_rejected(repo, reproduced):
    """DVC compares params by value: `train.epochs: true` after 1 was "unchanged", so check_params never ran."""
    p = yaml.safe_load((repo / "params.yaml").read_text())
    assert p["train"]["epochs"] == 1 and "up to date" in dvc(["status"], repo).stdout
    original = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(original.replace("  epochs: 1\n", "  epochs: true\n", 1))
    try:
        r = dvc(["repro"], repo)
    finally:
        (repo / "params.yaml").write_text(original)
    assert r.returncode != 0 and "'train.epochs' is True (bool); expected an integer" in r.stdout + r.stderr
    assert dvc(["repro"], repo).returncode == 0 and "up to date" in dvc(["status"], repo).stdout


def test_a_rejected_param_keeps_every_output(repo, reproduced):
    """Before: DVC deleted models/, metrics/train.json and dvclive/ before train rejected lr: -1."""
    def snapshot():
        return {str(f.relative_to(repo)): f.read_bytes() for top in ("models", "metrics", "plots", "dvclive")
                for f in sorted((repo / top).rglob("*")) if f.is_file()}

    assert "up to date" in dvc(["status"], repo).stdout, "needs the full pipeline run before"
    before = snapshot()
    original = (repo / "params.yaml").read_text()
    p = yaml.safe_load(original)
    p["train"]["lr"] = -1
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        r = dvc(["repro"], repo)
        status = json.loads(dvc(["status", "--json"], repo).stdout)
    finally:
        (repo / "params.yaml").write_text(original)
    assert r.returncode != 0
    errors = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'train.lr' is -1" in errors[0], r.stdout + r.stderr
    assert snapshot() == before
    for changes in status.values():  # only params changed, nothing deleted
        assert all(list(c) == ["changed deps"] and set(c["changed deps"]) == {"params.yaml"} for c in changes), status
    assert "up to date" in dvc(["status"], repo).stdout


def test_raw_dir_param_is_the_dependency(repo):
    """Before: dvc.yaml named data/raw/goemotions whatever data.raw_dir said."""
    text = (repo / "dvc.yaml").read_text()
    assert "${data.raw_dir}" in text and "data/raw/goemotions\n" not in text
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    p = yaml.safe_load((repo / "params.yaml").read_text())
    assert any(d["path"] == p["data"]["raw_dir"] for d in lock["stages"]["prepare"]["deps"])


def test_offline_plots_render_in_headless_chromium(repo, reproduced):
    """`make plots` output in a real browser: the vega charts must draw offline, not a blank page."""
    import shutil

    if not (shutil.which("chromium") and shutil.which("npm")):
        pytest.skip("needs Debian's chromium and npm (apt-get install chromium npm)")
    from matplotlib.image import imread

    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    shot = repo / "shot.png"
    r = subprocess.run([sys.executable, str(ROOT / "tools/offline_plots.py"), "--screenshot", str(shot)],
                       cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    html = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html
    img = imread(str(shot))[:2500, :, :3]
    # the first screenful holds the vega charts (bars, curves): plenty of coloured, non-white pixels
    coloured = ((img.max(axis=2) - img.min(axis=2)) > 0.2).mean()
    assert coloured > 0.01, coloured


def test_plain_dvc_plots_show_draws_every_chart_offline(repo, reproduced):
    """After `make setup`'s --install, DVC's own `dvc plots show` (no flag) uses the template with vega inlined."""
    import shutil

    if not (shutil.which("chromium") and shutil.which("npm")):
        pytest.skip("needs Debian's chromium and npm (apt-get install chromium npm)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("offline_plots", ROOT / "tools/offline_plots.py")
    offline_plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(offline_plots)

    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    r = subprocess.run([sys.executable, str(ROOT / "tools/offline_plots.py"), "--install"], cwd=repo, env=env,
                       capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    r = dvc(["plots", "show", "-o", "plain"], repo)
    assert r.returncode == 0, r.stderr
    html = (repo / "plain/index.html").read_text()
    vega = [p for p in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)]
    assert "cdn.jsdelivr" not in html and html.count("vegaEmbed(") == len(vega)
    assert offline_plots.rendered_charts(repo / "plain/index.html") == len(vega)  # every chart drawn, none left blank



def test_a_clone_gets_the_trained_model_with_dvc_pull_and_dvc_artifacts_get(repo, reproduced, tmp_path):
    """Once a remote holds main's outputs (its maintainers push them), a clone needs no training: `dvc pull`
    then `emotion-predict`, or `dvc artifacts get` of the model alone. A local remote stands for the shared one."""
    remote = tmp_path / "remote"
    assert dvc(["remote", "add", "--local", "pushed", str(remote)], repo).returncode == 0
    r = dvc(["push", "--remote", "pushed"], repo)
    assert r.returncode == 0, r.stderr
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run(git + ["commit", "-qm", "outputs"], cwd=repo, check=True, capture_output=True)
    # a version of the artifact, as the model registry (GTO) registers one: `dvc artifacts get` fetches the latest
    subprocess.run(git + ["tag", "-a", "emotion-classifier@v0.0.1", "-m", "tiny"], cwd=repo, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert dvc(["remote", "modify", "--local", "storage", "url", str(remote)], clone).returncode == 0
    r = dvc(["pull"], clone)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([sys.executable, "-m", "emotion_classifier.predict", "--model-dir", "models", "--text",
                          "thank you so much, [NAME]!", "--json"], cwd=clone, env=dvc_env(), capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "labels" in json.loads(out.stdout.splitlines()[0])
    r = dvc(["artifacts", "get", str(repo), "emotion-classifier", "-o", str(tmp_path / "got"),
             "--remote-config", f"url={remote}"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    from emotion_classifier.inference import EmotionClassifier

    clf = EmotionClassifier.load(tmp_path / "got", device="cpu")
    assert clf.predict_proba(["so happy"]).shape == (1, len(clf.labels))
