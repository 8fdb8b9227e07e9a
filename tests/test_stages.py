"""tune_thresholds -> evaluate -> compare on a tiny trained model, run in a scratch working dir."""

import json
import os

import pytest
import yaml

from emotion_classifier import pipeline
from emotion_classifier.inference import EmotionClassifier, ThresholdsError, read_thresholds
from emotion_classifier.params import validate

from .conftest import ROOT, tiny_params


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_encoder, tiny_prepared):
    d = tmp_path_factory.mktemp("stages")
    (d / "reference").mkdir()
    (d / "reference/results.yaml").write_text((ROOT / "reference/results.yaml").read_text())
    p = tiny_params(tiny_encoder, "bilstm_maxpool", epochs=2)
    p["data"]["prepared_dir"] = str(tiny_prepared)
    p["compare"]["tfidf_max_features"] = 1000
    old = os.getcwd()
    os.chdir(d)
    try:
        pipeline.train(p)
        yield d, p
    finally:
        os.chdir(old)


def test_tune_evaluate_compare(workdir):
    d, p = workdir
    pipeline.tune_thresholds(p)
    th = json.loads((d / "models/thresholds.json").read_text())
    assert set(th["strategies"]) == {"fixed", "global", "per_label"} and len(th["strategies"]["per_label"]) == 3
    m = json.loads((d / "metrics/thresholds.json").read_text())
    assert m["per_label_dev_macro_f1"] >= m["fixed_dev_macro_f1"] - 1e-9  # tuned on dev: never worse on dev
    assert len((d / "plots/thresholds/f1_vs_threshold.csv").read_text().splitlines()) == 1 + 99

    pipeline.evaluate(p)
    ev = json.loads((d / "metrics/eval.json").read_text())
    for k in ("test_subset_accuracy", "test_hamming_loss", "test_micro_f1", "test_macro_f1", "test_weighted_f1",
              "test_samples_f1", "test_micro_precision", "test_macro_recall", "test_roc_auc_micro",
              "test_roc_auc_macro", "test_average_precision_micro", "test_average_precision_macro",
              "test_expected_calibration_error", "dev_micro_f1", "dev_macro_f1"):
        assert k in ev, k
    assert not any("per_s" in k for k in ev)  # eval.json: seeded scores only; the speed goes apart
    speed = json.loads((d / "metrics/inference.json").read_text())
    assert speed["inference_sentences_per_s"] > 0 and speed["inference_threads"] >= 1
    # what produced the scores: evaluate's precision (fp32 by default on every machine) and device
    assert speed["inference_precision"] == p["evaluate"]["precision"] == "fp32"
    assert speed["inference_device"] == "cpu" and speed["inference_cpu_kind"]
    for f in ("per_label.csv", "precision_recall.csv", "roc.csv", "confusion_matrices.png", "reliability.png",
              "error_cooccurrence_counts.png", "error_cooccurrence_conditional.png", "error_cooccurrence_jaccard.png"):
        assert (d / "plots/eval" / f).stat().st_size > 0, f

    pipeline.compare(p)
    cmp = json.loads((d / "metrics/compare.json").read_text())
    assert cmp["model_minus_baseline_macro_f1"] == pytest.approx(cmp["model_macro_f1"] - cmp["baseline_macro_f1"])
    assert cmp["reference_macro_f1"] == 0.440  # bilstm_maxpool's reference row
    report = (d / "reports/compare.md").read_text()
    assert "TF-IDF + logistic regression" in report and "reference project, bilstm_maxpool" in report


def test_thresholds_for_other_weights_are_refused(workdir):
    d, p = workdir
    pipeline.tune_thresholds(p)
    path = d / "models/thresholds.json"
    th = json.loads(path.read_text())
    path.write_text(json.dumps({**th, "weights_sha256": "0" * 64}))
    with pytest.raises(ThresholdsError, match=r"tuned for other weights .* re-tune them: `dvc repro tune_thresholds`"):
        read_thresholds(d / "models")
    with pytest.raises(ThresholdsError, match="tuned for other weights"):
        pipeline.evaluate(p)
    clf = EmotionClassifier.load(d / "models")  # prediction without valid thresholds falls back to 0.5
    assert clf.thresholds.tolist() == [0.5] * 3
    pipeline.tune_thresholds(p)


def test_compare_params_validated():
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["evaluate"]["thresholds"] = "best"
    with pytest.raises(ValueError, match="'evaluate.thresholds' is 'best'; expected one of per_label, global, fixed"):
        validate(p)
