"""Bootstrap confidence intervals over test examples, vectorised.

A resample is a row of counts (how often each example is drawn); every metric is a weighted sum
over examples, so B resamples of micro/macro/per-label F1 are three matrix products, not B loops.
The same seeded counts serve every system scored on the same examples: paired differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .params import EvaluateParams


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) float32: how many times each of n examples is drawn in each resample of size n."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float32)


def test_resamples(n: int, eval_params: EvaluateParams) -> np.ndarray:
    """evaluate's resamples of the n test examples (evaluate.bootstrap_*): the same for every system scored on them,
    so compare's baseline is paired with the model example by example."""
    return resample_counts(n, eval_params.bootstrap_resamples, eval_params.bootstrap_seed)


def _f1(true_pos, false_pos, false_neg) -> np.ndarray:
    denom = 2 * true_pos + false_pos + false_neg
    return np.divide(2 * true_pos, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)


def f1_samples(y: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """micro_f1 (B,), macro_f1 (B,) and per_label_f1 (B, L) of each resample."""
    y, pred = y.astype(bool), pred.astype(bool)
    true_pos = counts @ (y & pred).astype(np.float32)
    false_pos = counts @ (~y & pred).astype(np.float32)
    false_neg = counts @ (y & ~pred).astype(np.float32)
    per_label = _f1(true_pos.astype(np.float64), false_pos, false_neg)
    micro = _f1(true_pos.sum(1, dtype=np.float64), false_pos.sum(1), false_neg.sum(1))
    return {"micro_f1": micro, "macro_f1": per_label.mean(1), "per_label_f1": per_label}


def auc_samples(y_col: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of one label in each resample (NaN where a resample lacks one class); ties count half,
    as scikit-learn's roc_auc_score with sample weights."""
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], y_col[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    w = counts[:, order]
    pos_w = np.add.reduceat(w * pos, starts, axis=1)
    neg_w = np.add.reduceat(w * ~pos, starts, axis=1)
    neg_below = np.cumsum(neg_w, axis=1, dtype=np.float64) - neg_w
    wins = (pos_w * (neg_below + 0.5 * neg_w)).sum(1)
    n_pos, n_neg = pos_w.sum(1, dtype=np.float64), neg_w.sum(1, dtype=np.float64)
    return np.divide(wins, n_pos * n_neg, out=np.full(len(counts), np.nan), where=(n_pos > 0) & (n_neg > 0))


def roc_auc_macro_samples(y: np.ndarray, probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Macro ROC-AUC of each resample over the labels with both classes in it (as metrics.evaluate)."""
    per_label = np.stack([auc_samples(y[:, j], probs[:, j], counts) for j in range(y.shape[1])], axis=1)
    with np.errstate(invalid="ignore"):
        return np.nanmean(per_label, axis=1)


def samples(y: np.ndarray, probs: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    return {**f1_samples(y, pred, counts), "roc_auc_macro": roc_auc_macro_samples(y, probs, counts)}


def interval(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along the first axis."""
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    return lo, hi


def paired(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """a - b over the same resamples: its interval and a two-sided p-value for 'no difference'
    (twice the share of resamples on the far side of 0, with +1 smoothing so it is never 0)."""
    diff = a - b
    lo, hi = interval(diff, level)
    k = min(int((diff <= 0).sum()), int((diff >= 0).sum()))
    return {"lo": float(lo), "hi": float(hi), "p_value": min(1.0, 2 * (k + 1) / (len(diff) + 1))}
