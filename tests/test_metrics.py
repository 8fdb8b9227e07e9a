import math

import numpy as np
import pytest

from emotion_classifier import metrics as M
from emotion_classifier import thresholds as T

# 4 examples, 3 labels; label 2 has no positives in y_true.
Y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
P = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]])
PROBS = np.array([[0.9, 0.2, 0.1], [0.4, 0.8, 0.6], [0.3, 0.7, 0.2], [0.6, 0.1, 0.3]])


def test_counts_and_f1_by_hand():
    tp, fp, fn, tn = M.counts(Y, P)
    assert tp.tolist() == [1, 2, 0] and fp.tolist() == [1, 0, 1] and fn.tolist() == [1, 0, 0]
    assert tn.tolist() == [1, 2, 3]
    # label 0: 2*1/(2+1+1) = .5; label 1: 1; label 2 (no positives, one FP): 0
    assert M.f1_per_label(Y, P).tolist() == [0.5, 1.0, 0.0]
    assert M.macro_f1(Y, P) == pytest.approx(0.5)
    assert M.micro_f1(Y, P) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))


def test_label_without_positives_or_predictions_is_zero_not_nan():
    y = np.array([[1, 0], [0, 0]])
    assert M.f1_per_label(y, y).tolist() == [1.0, 0.0]


def test_evaluate_by_hand():
    s, per = M.evaluate(Y, PROBS, P)
    assert s["subset_accuracy"] == pytest.approx(2 / 4)  # rows 0 and 2 are exact
    assert s["hamming_loss"] == pytest.approx(3 / 12)
    assert s["micro_precision"] == pytest.approx(3 / 5)
    assert s["micro_recall"] == pytest.approx(3 / 4)
    assert s["macro_precision"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert s["macro_recall"] == pytest.approx((0.5 + 1 + 0) / 3)  # recall of a label with no positives: 0
    assert s["weighted_f1"] == pytest.approx((2 * 0.5 + 2 * 1.0) / 4)
    # samples F1: row0 1, row1 2*1/(2+2)=.5, row2 1, row3 0 (no true labels, one predicted)
    assert s["samples_f1"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    # AUC label 0: positives {.9,.4} vs negatives {.3,.6}: pairs won 3 of 4; label 1: 1.0; label 2: undefined
    assert per["auc"][0] == pytest.approx(0.75) and per["auc"][1] == 1.0 and math.isnan(per["auc"][2])
    assert s["roc_auc_macro"] == pytest.approx(0.875)
    assert per["support"].tolist() == [2, 2, 0]


def test_expected_calibration_error_by_hand():
    y = np.array([[1], [0], [1], [1]])
    p = np.array([[0.95], [0.95], [0.05], [0.05]])
    # two bins: conf .95 freq .5 (2 ex), conf .05 freq 1.0 (2 ex): (2*.45 + 2*.95)/4
    assert M.expected_calibration_error(y, p) == pytest.approx((2 * 0.45 + 2 * 0.95) / 4)
    assert M.expected_calibration_error(np.array([[1], [0]]), np.array([[1.0], [0.0]])) == 0.0


def test_error_cooccurrence_by_hand():
    e = M.error_cooccurrence(Y, P)
    # false positives: row1 predicts 2 (true 0,1), row3 predicts 0 (true none)
    assert e["counts"].tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    assert e["conditional"][0, 2] == pytest.approx(1 / 2)  # 1 of the 2 true-0 examples
    assert e["jaccard"][0, 2] == pytest.approx(1 / (2 + 1 - 1))


def test_threshold_tuning_finds_known_optimum():
    rng = np.random.default_rng(0)
    n = 2000
    y = np.zeros((n, 3), dtype=int)
    y[:, 0] = rng.random(n) < 0.3
    y[:, 1] = rng.random(n) < 0.3
    probs = np.zeros((n, 3))
    # label 0: positives in [.355, .45], negatives in [.05, .295]: every t in .30...35 is perfect
    probs[:, 0] = np.where(y[:, 0], rng.uniform(0.355, 0.45, n), rng.uniform(0.05, 0.295, n))
    # label 1: positives in [.755, .9], negatives in [.5, .695]: every t in .70...75 is perfect
    probs[:, 1] = np.where(y[:, 1], rng.uniform(0.755, 0.9, n), rng.uniform(0.5, 0.695, n))
    probs[:, 2] = rng.random(n)  # label 2: no positives -> falls back to the global threshold
    res = T.tune(y, probs, metric="macro_f1", min_positives=5)
    per = res["strategies"]["per_label"]
    assert per[:2] == [0.30, 0.70]  # ties go to the lowest threshold
    assert per[2] == res["global_threshold"] and res["fallback_labels"] == [2]
    pred = T.apply(probs, per)
    assert M.f1_per_label(y, pred)[:2].tolist() == [1.0, 1.0]
    assert res["strategies"]["fixed"] == [0.5] * 3
    curves = res["curves"]
    assert curves["micro_f1"].shape == (99,) and curves["macro_f1"].max() <= 2 / 3 + 1e-9


def test_tune_thresholds_names_the_labels_that_take_the_global_threshold(tuned_model, tiny_encoder, tiny_prepared,
                                                                         tmp_path, capsys):
    """Issue 49 (8): a label with fewer than min_positives dev positives takes the global threshold; the stage
    says which, where it happens (at 300 dev examples most labels do)."""
    import json
    import shutil

    from emotion_classifier.params import with_overrides
    from emotion_classifier.stages import tune_thresholds

    from .conftest import tiny_params

    shutil.copytree(tuned_model, tmp_path / "models")
    p = with_overrides(tiny_params(tiny_encoder, "transformer_finetune", epochs=2), {
        "data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.pooling": "pooler",
        "tune_thresholds.onnx_int8": False, "thresholds.min_positives": 1000})
    capsys.readouterr()
    tune_thresholds.run(p, tmp_path)
    fallback = json.loads((tmp_path / "models/thresholds.json").read_text())["fallback_labels"]
    out = capsys.readouterr().out
    assert fallback and f"{len(fallback)} of {len(fallback)} labels have fewer than 1000 dev positives" in out, out
    assert ", ".join(fallback) in out
