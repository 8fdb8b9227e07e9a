"""Multilabel metrics on numpy arrays: y_true and y_pred are (n, L) in {0, 1}.

A label with no positives and no predictions has F1 = 0 by convention (as scikit-learn's
zero_division=0), so a macro average is always defined.
"""

from __future__ import annotations

import numpy as np


def counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per label: true positives, false positives, false negatives, true negatives."""
    t, p = y_true.astype(bool), y_pred.astype(bool)
    return (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0), (~t & ~p).sum(0)


def _div(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def f1_per_label(y_true, y_pred) -> np.ndarray:
    true_pos, false_pos, false_neg, _ = counts(y_true, y_pred)
    return _div(2 * true_pos, 2 * true_pos + false_pos + false_neg)


def micro_f1(y_true, y_pred) -> float:
    true_pos, false_pos, false_neg, _ = (c.sum() for c in counts(y_true, y_pred))
    return float(_div(2 * true_pos, 2 * true_pos + false_pos + false_neg))


def macro_f1(y_true, y_pred) -> float:
    return float(f1_per_label(y_true, y_pred).mean())


def _auc_per_label(y_true, probs, fn) -> np.ndarray:
    """fn per label; NaN where a label has only one class in y_true (AUC is undefined there)."""
    out = np.full(y_true.shape[1], np.nan)
    for j in range(y_true.shape[1]):
        if 0 < y_true[:, j].sum() < len(y_true):
            out[j] = fn(y_true[:, j], probs[:, j])
    return out


def calibration_bins(y_true, probs, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Every (example, label) probability as one binary forecast, in equal-width bins."""
    p, t = probs.ravel(), y_true.ravel().astype(float)
    which = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf = np.bincount(which, weights=p, minlength=n_bins) / np.maximum(count, 1)
    freq = np.bincount(which, weights=t, minlength=n_bins) / np.maximum(count, 1)
    return {"lower": np.arange(n_bins) / n_bins, "count": count, "confidence": conf, "frequency": freq}


def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    b = calibration_bins(y_true, probs, n_bins)
    return float(np.sum(b["count"] * np.abs(b["frequency"] - b["confidence"])) / max(1, b["count"].sum()))


def evaluate(y_true: np.ndarray, probs: np.ndarray, pred: np.ndarray) -> tuple[dict[str, float], dict]:
    """Flat scalar metrics, and per-label arrays (support, P, R, F1, TP, FP, FN, TN, AUC).

    Zero division counts as 0 (scikit-learn's zero_division=0); a label with a single class in
    y_true has no AUC/AP: NaN per label, left out of the macro averages.
    """
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    y_true, pred = y_true.astype(int), pred.astype(int)
    out: dict[str, float] = {
        "subset_accuracy": float((y_true == pred).all(1).mean()),
        "hamming_loss": float((y_true != pred).mean()),
    }
    for avg in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    auc = _auc_per_label(y_true, probs, roc_auc_score)
    ap = _auc_per_label(y_true, probs, average_precision_score)
    both = 0 < y_true.sum() < y_true.size
    out["roc_auc_micro"] = float(roc_auc_score(y_true.ravel(), probs.ravel())) if both else float("nan")
    out["roc_auc_macro"] = float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")
    out["average_precision_micro"] = float(average_precision_score(y_true.ravel(), probs.ravel())) if both \
        else float("nan")
    out["average_precision_macro"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    out["expected_calibration_error"] = expected_calibration_error(y_true, probs)
    true_pos, false_pos, false_neg, true_neg = counts(y_true, pred)
    per_label = {"support": y_true.sum(0), "precision": _div(true_pos, true_pos + false_pos),
                 "recall": _div(true_pos, true_pos + false_neg), "f1": f1_per_label(y_true, pred),
                 "tp": true_pos, "fp": false_pos, "fn": false_neg, "tn": true_neg, "auc": auc}
    return out, per_label


def error_cooccurrence(y_true: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """E[i, j]: examples whose true labels include i and whose predictions wrongly include j
    (a false positive j). Also P(false j | true i) and Jaccard(true i, false j)."""
    t = y_true.astype(np.int64)
    fp = (pred.astype(bool) & ~y_true.astype(bool)).astype(np.int64)
    e = t.T @ fp
    n_true = t.sum(0).astype(float)
    n_fp = fp.sum(0).astype(float)
    conditional = np.divide(e, n_true[:, None], out=np.zeros(e.shape), where=n_true[:, None] > 0)
    union = n_true[:, None] + n_fp[None, :] - e
    jaccard = np.divide(e, union, out=np.zeros(e.shape), where=union > 0)
    return {"counts": e, "conditional": conditional, "jaccard": jaccard}
