"""Bootstrap intervals and paired differences against answers known in advance."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from emotion_classifier import bootstrap
from emotion_classifier import metrics as M


def test_interval_matches_the_binomial_answer():
    """Predict every example positive: F1 = 2p / (1 + p) with p the share of positives, so its 95% interval
    is the binomial interval of p (normal approximation, n large) mapped through that increasing function."""
    n, positives = 2000, 600
    y = np.zeros((n, 1), dtype=int)
    y[:positives] = 1
    pred = np.ones_like(y)
    counts = bootstrap.resample_counts(n, 4000, seed=0)
    lo, hi = bootstrap.interval(bootstrap.f1_samples(y, pred, counts)["micro_f1"])
    p = positives / n
    half = norm.ppf(0.975) * np.sqrt(p * (1 - p) / n)
    f1 = lambda q: 2 * q / (1 + q)  # noqa: E731
    assert lo == pytest.approx(f1(p - half), abs=0.002) and hi == pytest.approx(f1(p + half), abs=0.002)


def test_each_resample_scores_as_the_drawn_examples_would():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 5)) < 0.2).astype(int)
    probs = np.round(np.clip(0.4 * y + 0.6 * rng.random(y.shape), 0, 1), 1)  # rounded: many tied scores
    pred = probs >= 0.5
    counts = bootstrap.resample_counts(len(y), 20, seed=3)
    s = bootstrap.samples(y, probs, pred, counts)
    for b in (0, 7, 19):
        drawn = np.repeat(np.arange(len(y)), counts[b].astype(int))
        assert s["micro_f1"][b] == pytest.approx(M.micro_f1(y[drawn], pred[drawn]), abs=1e-12)
        assert s["macro_f1"][b] == pytest.approx(M.macro_f1(y[drawn], pred[drawn]), abs=1e-12)
        auc = np.mean([roc_auc_score(y[drawn, j], probs[drawn, j]) for j in range(y.shape[1])])
        assert s["roc_auc_macro"][b] == pytest.approx(auc, abs=1e-12)
    assert counts.sum(1).tolist() == [len(y)] * 20  # each resample has n draws


def test_paired_difference_by_hand():
    # 4 examples, 1 label: truth 1 1 0 0; the model predicts 1 1 1 0, the baseline 1 0 0 0
    y = np.array([[1], [1], [0], [0]])
    model, base = np.array([[1], [1], [1], [0]]), np.array([[1], [0], [0], [0]])
    # resample A draws examples 0, 0, 2, 3; resample B draws 1, 1, 2, 2
    counts = np.array([[2, 0, 1, 1], [0, 2, 2, 0]], dtype=np.float32)
    a, b = bootstrap.f1_samples(y, model, counts), bootstrap.f1_samples(y, base, counts)
    # A: model TP 2 FP 1 FN 0 -> 4/5; baseline TP 2 FP 0 FN 0 -> 1.   B: model TP 2 FP 2 -> 4/6; baseline TP 0 FN 2 -> 0
    assert a["micro_f1"].tolist() == pytest.approx([0.8, 4 / 6])
    assert b["micro_f1"].tolist() == pytest.approx([1.0, 0.0])
    diff = bootstrap.paired(a["micro_f1"], b["micro_f1"], level=0.5)
    assert (diff["lo"], diff["hi"]) == pytest.approx((-0.2 + 0.25 * (4 / 6 + 0.2), -0.2 + 0.75 * (4 / 6 + 0.2)))
    assert diff["p_value"] == 1.0  # one difference <= 0, one >= 0: min(1, 2 * (1 + 1) / 3)
    assert bootstrap.paired(np.ones(999), np.zeros(999))["p_value"] == pytest.approx(2 / 1000)  # never 0
