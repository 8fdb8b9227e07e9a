"""tune_thresholds -> evaluate -> compare on a tiny trained model, their outputs in a scratch folder."""

import json

import pandas as pd
import pytest
import yaml

from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.model_dir import ThresholdsError
from emotion_classifier.model_dir.model import read_thresholds
from emotion_classifier.params import from_tree, to_tree, with_overrides

from .conftest import ROOT, run_stage, tiny_params


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_encoder, tiny_prepared):
    d = tmp_path_factory.mktemp("stages")
    (d / "reference").mkdir()
    (d / "reference/results.yaml").write_text((ROOT / "reference/results.yaml").read_text())
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool", epochs=2),
                       {"data.prepared_dir": str(tiny_prepared), "compare.tfidf_max_features": 1000})
    run_stage("train", p, d)
    return d, p


def test_tune_evaluate_compare(workdir):
    d, p = workdir
    run_stage("tune_thresholds", p, d)
    th = json.loads((d / "models/thresholds.json").read_text())
    assert set(th["strategies"]) == {"fixed", "global", "per_label"} and len(th["strategies"]["per_label"]) == 3
    m = json.loads((d / "metrics/thresholds.json").read_text())
    # each label's own best threshold on dev: never worse on dev than the one global threshold
    assert m["per_label_dev_macro_f1"] >= m["global_dev_macro_f1"] - 1e-9
    assert len((d / "plots/thresholds/f1_vs_threshold.csv").read_text().splitlines()) == 1 + 99

    run_stage("evaluate", p, d)
    ev = json.loads((d / "metrics/eval.json").read_text())
    for k in ("micro_f1", "macro_f1", "roc_auc_macro"):  # with their bootstrap interval
        assert ev[f"test_{k}_lo"] <= ev[f"test_{k}"] <= ev[f"test_{k}_hi"], k
    assert ev["test_macro_f1_hi"] > ev["test_macro_f1_lo"]  # 30 test examples: a wide interval
    every = json.loads((d / "plots/eval/all_scores.json").read_text())  # every figure, apart from the metrics
    for k in ("test_subset_accuracy", "test_weighted_f1", "test_samples_f1", "test_macro_recall", "test_roc_auc_micro",
              "test_average_precision_micro", "dev_micro_precision", "dev_roc_auc_macro"):
        assert k in every, k
    assert {k: every[k] for k in ev} == ev
    assert not any("per_s" in k for k in ev)  # eval.json: seeded scores only; the speed goes apart
    speed = json.loads((d / "metrics/inference.json").read_text())
    assert speed["inference_sentences_per_s"] > 0 and speed["inference_threads"] >= 1
    # what produced the scores: evaluate's precision (fp32 by default on every machine) and device
    assert speed["inference_precision"] == p.evaluate.precision == "fp32"
    assert speed["inference_device"] == "cpu" and speed["inference_cpu_kind"]
    for f in ("per_label.csv", "precision_recall.csv", "roc.csv", "confusion_matrices.png", "reliability.png",
              "error_cooccurrence_counts.png", "error_cooccurrence_conditional.png", "error_cooccurrence_jaccard.png"):
        assert (d / "plots/eval" / f).stat().st_size > 0, f

    run_stage("compare", p, d)
    cmp = json.loads((d / "metrics/compare.json").read_text())
    assert cmp["model_minus_baseline_macro_f1"] == pytest.approx(ev["test_macro_f1"] - cmp["baseline_macro_f1"])
    for k in ("micro_f1", "macro_f1"):
        key = f"model_minus_baseline_{k}"
        assert cmp[f"{key}_lo"] <= cmp[f"{key}_hi"] and 0 < cmp[f"{key}_p_value"] <= 1
    per_label = pd.read_csv(d / "plots/eval/per_label.csv")
    assert ((per_label["f1_lo"] <= per_label["f1"] + 1e-4) & (per_label["f1"] <= per_label["f1_hi"] + 1e-4)).all()
    assert cmp["reference_macro_f1"] == 0.440  # bilstm_maxpool's reference row
    report = (d / "reports/compare.md").read_text()
    assert "TF-IDF + logistic regression" in report and "reference project, bilstm_maxpool" in report
    assert "| **bilstm_maxpool** (this experiment) |" in report  # one model: its architecture
    assert "model minus baseline, macro f1 (paired; p = " in report


def test_thresholds_for_other_weights_are_refused(workdir):
    d, p = workdir
    run_stage("tune_thresholds", p, d)
    path = d / "models/thresholds.json"
    th = json.loads(path.read_text())
    path.write_text(json.dumps({**th, "weights_sha256": "0" * 64}))
    with pytest.raises(ThresholdsError, match=r"tuned for other weights .* re-tune them: `dvc repro tune_thresholds`"):
        read_thresholds(d / "models")
    with pytest.raises(ThresholdsError, match="tuned for other weights"):
        run_stage("evaluate", p, d)
    with pytest.warns(UserWarning, match="tuned for other weights.*; predicting at 0.5"):
        clf = EmotionClassifier.load(d / "models")  # the API falls back to 0.5, and says so
    assert clf.thresholds.tolist() == [0.5] * 3 and not clf.tuned
    run_stage("tune_thresholds", p, d)


def test_compare_params_validated():
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["evaluate"]["thresholds"] = "best"
    with pytest.raises(ValueError, match="'evaluate.thresholds' is 'best'; expected one of per_label, global, fixed"):
        from_tree(p)


# ---------------------------------------------------------------- bad input to a stage: one `error:` line, exit 1


def _stage(stage, params: dict | str, tmp_path, capsys) -> tuple[int, str]:
    from emotion_classifier.cli import run

    path = tmp_path / "params.yaml"
    path.write_text(params if isinstance(params, str) else yaml.safe_dump(to_tree(params)))
    code = run(stage, ["--params", str(path)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return code, err


def test_params_that_are_not_yaml(tmp_path, capsys):
    _, err = _stage("train", "seed: 42\ntrain:\n  lr: [1e-3\n", tmp_path, capsys)
    assert f"{tmp_path}/params.yaml:4:1: not valid YAML" in err


@pytest.mark.parametrize("name, change, message", [
    ("bilstm_maxpool", {"model.encoder": "no/such-encoder"}, "model.encoder: cannot load 'no/such-encoder'"),
    ("bilstm_maxpool", {"model.bilstm_maxpool.embedding_dim": 20}, "init_embeddings: encoder needs embedding_dim = 32"),
    ("transformer_featureextract", {"model.transformer_featureextract.feature_layers": 9},
     "feature_layers is 9 but the encoder has 3 hidden states"),
])
def test_params_that_do_not_fit_the_encoder(tmp_path, capsys, monkeypatch, tiny_encoder, tiny_prepared, name, change,
                                            message):
    p = with_overrides(tiny_params(tiny_encoder, name, epochs=1), {"data.prepared_dir": str(tiny_prepared), **change})
    monkeypatch.chdir(tmp_path)  # the console script writes where it runs, as under DVC
    _, err = _stage("train", p, tmp_path, capsys)
    assert message in err and not (tmp_path / "models").exists()


def test_check_params_stage(tmp_path, capsys, monkeypatch):
    from emotion_classifier.cli import check_params_main
    from emotion_classifier.paths import PARAMS_CHECKED

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    check_params_main([])
    first = (tmp_path / PARAMS_CHECKED).read_bytes()
    raw["train"]["lr"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as e:
        check_params_main([])
    assert e.value.code == 1 and "'train.lr' is -1" in capsys.readouterr().err
    raw["train"]["lr"] = 0.01
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    check_params_main([])
    assert (tmp_path / PARAMS_CHECKED).read_bytes() == first  # constant: stages depending on it do not rerun
