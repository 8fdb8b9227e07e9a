"""Ensembles: weights fitted on dev, members trained by the train stage, served as one model directory."""

import json

import numpy as np
import pytest

from emotion_classifier import data
from emotion_classifier.ensemble import average, fit_weights
from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.model_dir import ThresholdsError
from emotion_classifier.model_dir.model import load, read_config, read_thresholds
from emotion_classifier.params import ParamsError, member_params, resolve, with_overrides
from emotion_classifier.stages import train as train_stage
from emotion_classifier.training.loop import fit
from emotion_classifier.training.reuse import cached_timing

from .conftest import ROOT, run_stage, tiny_params


def _bce(probs, y):
    probs = np.clip(probs, 1e-7, 1 - 1e-7)
    return -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs))


def test_fit_weights_finds_the_informative_member():
    rng = np.random.default_rng(0)
    y = rng.random((400, 5)) < 0.2
    good = np.where(y, 0.8, 0.1)
    noise = rng.random(y.shape)
    w = fit_weights([noise, good], y)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all() and w[1] > 0.95
    # identical members: no reason to move from equal weights
    assert fit_weights([good, good], y) == pytest.approx([0.5, 0.5])


def test_fit_weights_minimises_dev_cross_entropy():
    rng = np.random.default_rng(1)
    y = rng.random((300, 4)) < 0.3
    members = [np.clip(y * 0.6 + rng.random(y.shape) * 0.4, 0.01, 0.99) for _ in range(2)] + [rng.random(y.shape)]
    w = fit_weights(members, y)
    best = _bce(average(members, w), y)
    for other in ([1 / 3] * 3, [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [1.0, 0.0, 0.0]):  # none beats the fitted mix
        assert best <= _bce(average(members, other), y) + 1e-6, other


def test_member_params_apply_overrides_and_refuse_others(tiny_encoder):
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool"),
                       {"ensemble.members": [{"model.name": "textcnn", "seed": 3, "train.epochs": 1}]})
    m = member_params(p, 0)
    assert (m.model.name, m.seed, m.train.epochs, m.ensemble.members) == ("textcnn", 3, 1, ())
    assert p.model.name == "bilstm_maxpool"  # the main params are left as they were
    for bad, says in (({"data.max_examples": 5}, "may set only seed, model.*, train.* and loss.*"),
                      ({"model.textcnn.filterz": 5}, "not a key of params.yaml"),
                      ({"train.epochs": 0}, "'train.epochs' is 0"),
                      ("textcnn", "expected a mapping of overrides")):
        with pytest.raises(ParamsError, match="ensemble.members\\[0\\]") as e:
            with_overrides(p, {"ensemble.members": [bad]})
        assert says in str(e.value)


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory, tiny_encoder, tiny_prepared):
    d = tmp_path_factory.mktemp("ensemble")
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool", epochs=2), {
        "data.prepared_dir": str(tiny_prepared), "model.name": "ensemble",
        "ensemble.members": [{"model.name": "bilstm_maxpool"}, {"model.name": "textcnn", "seed": 1},
                             {"model.name": "bilstm_maxpool", "seed": 2}]})
    run_stage("train", p, d)
    run_stage("tune_thresholds", p, d)
    return d, p


def test_ensemble_is_trained_tuned_and_served(ensemble_dir, capsys):
    d, p = ensemble_dir
    assert [json.loads((d / f"models/members/{i}/config.json").read_text())["name"] for i in (1, 2)] == [
        "textcnn", "bilstm_maxpool"]
    assert sorted(x.name for x in (d / "models/members").iterdir()) == ["1", "2", "README.txt"]
    th = json.loads((d / "models/thresholds.json").read_text())
    assert len(th["member_weights"]) == 3 and sum(th["member_weights"]) == pytest.approx(1.0)
    clf = EmotionClassifier.load(d / "models", device="cpu")
    texts = ["so happy for you", "this is awful", "what?"]
    alone = [EmotionClassifier(*load(m), device="cpu").predict_proba(texts)  # each model by itself
             for m in (d / "models", d / "models/members/1", d / "models/members/2")]
    assert np.allclose(clf.predict_proba(texts), np.tensordot(th["member_weights"], np.stack(alone), 1), atol=1e-6)
    assert len(clf.predict(texts)) == 3
    m = json.loads((d / "metrics/thresholds.json").read_text())
    assert 0 <= m["best_single_model_dev_macro_f1"] <= 1
    run_stage("evaluate", p, d)
    assert 0 <= json.loads((d / "metrics/eval.json").read_text())["test_macro_f1"] <= 1
    (d / "reference").mkdir()
    (d / "reference/results.yaml").write_text((ROOT / "reference/results.yaml").read_text())
    run_stage("compare", p, d)
    w = th["member_weights"]
    assert (f"| **ensemble (weights fitted on dev): {w[0]:.2f} bilstm_maxpool + {w[1]:.2f} textcnn + {w[2]:.2f} "
            "bilstm_maxpool** (this experiment) |") in (d / "reports/compare.md").read_text()

    # a finished member is kept when the stage reruns (DVC keeps models/members: persist)
    capsys.readouterr()
    train_stage.train_ensemble(p, *data.load_prepared(p.data.prepared_dir), d)
    assert capsys.readouterr().out.count("trained already, kept") == 3
    train_json = json.loads((d / "metrics/train.json").read_text())
    records = [read_config(m)["train"] for m in (d / "models", d / "models/members/1", d / "models/members/2")]
    times = [cached_timing(r["run_id"])["train_time_s"] for r in records]  # the model directory holds no timings
    assert train_json["train_time_s"] == pytest.approx(sum(times), abs=0.05) and min(times) > 0
    assert train_json["members"] == "bilstm_maxpool + textcnn + bilstm_maxpool"


def test_a_member_is_the_model_its_overrides_train_alone(ensemble_dir, tmp_path):
    """Member 1, trained after member 0 in the same process, equals the model its params train alone:
    a member can be tried as an experiment first (`dvc exp run -S ...`) and be the same model."""
    d, p = ensemble_dir
    splits, names = data.load_prepared(p.data.prepared_dir)
    fit(resolve(member_params(p, 1)), splits, names, model_dir=tmp_path / "alone", metrics_path=None, live_dir=None,
        checkpoint_root=tmp_path / "ckpt")
    member = (d / "models/members/1/model.safetensors").read_bytes()
    assert (tmp_path / "alone/model.safetensors").read_bytes() == member


def test_a_member_trained_by_an_earlier_run_is_copied_not_trained(ensemble_dir, tmp_path, capsys):
    """The model cache (by run id): an ensemble of models that experiments trained already costs no training."""
    d, p = ensemble_dir
    again = with_overrides(p, {"ensemble.members": list(p.ensemble.members[1:])})
    capsys.readouterr()
    train_stage.train_ensemble(again, *data.load_prepared(p.data.prepared_dir), tmp_path)
    out = capsys.readouterr().out
    assert out.count("trained by an earlier run") == 2 and "epoch 1:" not in out, out
    for mine, theirs in (("models", "models/members/1"), ("models/members/1", "models/members/2")):
        assert (tmp_path / mine / "model.safetensors").read_bytes() == (d / theirs / "model.safetensors").read_bytes()
    curves = (tmp_path / "dvclive/plots/metrics/dev_loss.tsv").read_text().splitlines()
    assert len(curves) == 1 + 2  # the first member's epochs, replayed from the cache for `dvc plots`
    changed = with_overrides(again, {"seed": 9, "ensemble.members": [{"model.name": "textcnn"}]})
    capsys.readouterr()
    train_stage.train_ensemble(changed, *data.load_prepared(p.data.prepared_dir), tmp_path)
    assert "trained; dev macro F1" in capsys.readouterr().out  # another seed: another model, trained


def test_ensemble_thresholds_belong_to_every_member(ensemble_dir, tiny_encoder):
    d, p = ensemble_dir
    weights = d / "models/members/1/model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-4] + b"\0\0\0\0")  # one member's weights change
        with pytest.raises(ThresholdsError, match="tuned for other weights"):
            read_thresholds(d / "models")
    finally:
        weights.write_bytes(original)
    read_thresholds(d / "models")



def test_ensemble_exports_to_onnx_member_by_member(ensemble_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]' (make test installs it)")
    from transformers import AutoTokenizer

    from emotion_classifier.errors import UserError
    from emotion_classifier.export import export, export_onnx

    d, _ = ensemble_dir
    texts = ["so happy for you", "this is awful", ""]
    clf = EmotionClassifier.load(d / "models", device="cpu")
    out = export_onnx(d / "models", tmp_path / "onnx")
    config = json.loads((out / "config.json").read_text())
    weights, probs = config["ensemble"]["weights"], []
    assert weights == pytest.approx(clf.member_weights.tolist())
    for part in [{"dir": ".", "max_length": config["max_length"]}, *config["ensemble"]["members"]]:
        tok = AutoTokenizer.from_pretrained(str(out / part["dir"]))
        session = ort.InferenceSession(str(out / part["dir"] / "model.onnx"), providers=["CPUExecutionProvider"])
        enc = tok(texts, padding=True, truncation=True, max_length=part["max_length"], return_tensors="np")
        logits = session.run(["logits"], {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
        probs.append(1 / (1 + np.exp(-logits)))
    np.testing.assert_allclose(np.tensordot(weights, np.stack(probs), 1), clf.predict_proba(texts), atol=1e-5)
    onnx_clf = EmotionClassifier.load(d / "models", backend="onnx")
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    with pytest.raises(UserError, match="an ensemble of 3 models"):
        export(d / "models", tmp_path / "hf")


def test_search_tables_every_ensemble_holding_the_first_or_every_one(ensemble_dir, monkeypatch):
    import shutil

    from emotion_classifier.errors import UserError
    from emotion_classifier.experiments import ensemble_search

    d, p = ensemble_dir
    dirs = {"a": d / "models", "b": d / "models/members/1", "c": d / "models/members/2"}
    monkeypatch.setattr(ensemble_search, "experiment_model", lambda name, dest, repo: shutil.copytree(
        dirs[name], dest, ignore=shutil.ignore_patterns("members", "thresholds.json")))
    lines = ensemble_search.search(["a", "b", "c"], p.data.prepared_dir, p.policy)
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| a", "| a + b", "| a + c", "| a + b + c"]
    weights = [float(w) for w in lines[-1].split(" | ")[1].split(", ")]
    assert sum(weights) == pytest.approx(1.0, abs=0.02)
    assert len(ensemble_search.search(["a", "b"], p.data.prepared_dir, p.policy, temperature=True)) == 4
    every = ensemble_search.search(["a", "b", "c"], p.data.prepared_dir, p.policy, every=True)
    assert [line.split(" | ")[0] for line in every[2:]] == ["| a", "| b", "| c", "| a + b", "| a + c", "| b + c",
                                                           "| a + b + c"]
    member = str(d / "models/members/1")  # a model directory stands for itself
    by_dir = ensemble_search.search([member, "a"], p.data.prepared_dir, p.policy)
    assert [line.split(" | ")[0] for line in by_dir[2:]] == [f"| {member}", f"| {member} + a"]
    assert by_dir[3].split(" | ")[2:] == lines[3].split(" | ")[2:]  # the model of experiment "b": a + b's scores
    by_label = ensemble_search.search(["a", "b"], p.data.prepared_dir, p.policy, labels=["anger", "joy"])
    assert by_label[0].endswith("| CV micro F1 | CV anger | CV joy |")
    assert {len(line.split("|")) for line in by_label} == {len(by_label[0].split("|"))}
    assert all(line.startswith(old) for line, old in zip(by_label[2:], lines[2:4], strict=True))  # columns added
    assert all(0 <= float(f) <= 1 for line in by_label[2:] for f in line.strip(" |").split(" | ")[-2:])
    with pytest.raises(UserError, match="--labels: no label grief"):
        ensemble_search.search(["a"], p.data.prepared_dir, p.policy, labels=["grief"])


def test_fit_temperature_recovers_an_overconfident_models_calibration():
    from emotion_classifier.ensemble import fit_temperature, tempered

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 3))
    y = rng.random(logits.shape) < 1 / (1 + np.exp(-logits))  # calibrated at temperature 1
    overconfident = 1 / (1 + np.exp(-3 * logits))             # the same ranking, logits x 3
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert _bce(tempered(overconfident, t), y) < _bce(overconfident, y)
    assert fit_temperature(1 / (1 + np.exp(-logits)), y) == pytest.approx(1.0, rel=0.1)


def test_a_shorter_member_list_drops_the_rest(ensemble_dir, tmp_path):
    import shutil

    src, p = ensemble_dir
    d = tmp_path / "copy"  # a copy: the shared ensemble stays whole for every other test, in any order
    shutil.copytree(src / "models", d / "models")
    fewer = with_overrides(p, {"ensemble.members": list(p.ensemble.members[:2])})
    train_stage.train_ensemble(fewer, *data.load_prepared(p.data.prepared_dir), d)
    assert sorted(x.name for x in (d / "models/members").iterdir()) == ["1", "README.txt"]


def test_cross_validated_f1_does_not_flatter_noise():
    from emotion_classifier import metrics as M
    from emotion_classifier import thresholds as T
    from emotion_classifier.ensemble import cross_validated_f1, held_out_predictions

    rng = np.random.default_rng(0)
    y = rng.random((500, 4)) < 0.3
    assert cross_validated_f1(y, np.where(y, 0.7, 0.2)) == pytest.approx((1.0, 1.0))  # separable: perfect
    held_out = list(held_out_predictions(y, np.where(y, 0.7, 0.2)))
    assert len(held_out) == 4 and all((pred == y).all() and len(parts) == 5 for parts, pred in held_out)
    y = rng.random((500, 4)) < 0.05  # rare labels, uninformative scores: thresholds tuned on the scored
    noise = rng.random(y.shape)      # examples themselves catch lucky positives (0.109 here, 0.060 held out)
    in_sample = M.macro_f1(y, T.apply(noise, T.tune(y, noise)["strategies"]["per_label"]))
    assert cross_validated_f1(y, noise)[0] < in_sample - 0.01


def test_experiment_model_is_copied_out_of_the_dvc_cache(tmp_path):
    import subprocess

    import yaml

    from emotion_classifier.errors import UserError
    from emotion_classifier.experiments.ensemble_search import experiment_model

    repo = tmp_path / "repo"
    cache = repo / ".dvc/cache/files/md5"
    blobs = {"aa11": b"weights", "bb22": b"{}", "cc33": b"tok",
             "dd44.dir": b'[{"relpath": "vocab.txt", "md5": "cc33"}]'}
    for md5, content in blobs.items():
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(content)
    outs = [{"path": "models/model.safetensors", "md5": "aa11"}, {"path": "models/config.json", "md5": "bb22"},
            {"path": "models/tokenizer", "md5": "dd44.dir"}, {"path": "dvclive/plots", "md5": "ee55.dir"}]
    (repo / "dvc.lock").write_text(yaml.safe_dump({"stages": {"train": {"outs": outs}}}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "dvc.lock"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "exp"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True, capture_output=True,
                          check=True).stdout.strip()
    subprocess.run(git + ["update-ref", "refs/exps/ab/cdef/ft-s7", "HEAD"], cwd=repo, check=True)  # another commit's
    with pytest.raises(UserError, match="no experiment named 'ft-s7' at this commit .*; one exists at abcdef"):
        experiment_model("ft-s7", tmp_path / "out", repo)
    subprocess.run(git + ["update-ref", f"refs/exps/{head[:2]}/{head[2:]}/ft-s7", "HEAD"], cwd=repo, check=True)
    out = experiment_model("ft-s7", tmp_path / "out", repo)
    assert (out / "model.safetensors").read_bytes() == b"weights"
    assert (out / "tokenizer/vocab.txt").read_bytes() == b"tok"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
    with pytest.raises(UserError, match="no experiment named 'ft-s8'"):
        experiment_model("ft-s8", tmp_path / "out2", repo)
