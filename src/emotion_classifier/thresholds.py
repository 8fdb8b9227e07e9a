"""Decision thresholds, tuned on dev probabilities only. A label is predicted when p >= threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import metrics as M

GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # 0.01 .. 0.99
STRATEGIES = ("per_label", "global", "fixed")  # evaluate.thresholds: what tune gives and apply applies


def f1_curves(y: np.ndarray, probs: np.ndarray, grid: np.ndarray = GRID) -> dict[str, np.ndarray]:
    """Micro F1, macro F1 and per-label F1 (T x L) at each global threshold of `grid`."""
    y = y.astype(bool)
    per_label = np.zeros((len(grid), y.shape[1]))
    micro = np.zeros(len(grid))
    for k, t in enumerate(grid):
        pred = probs >= t
        true_pos, false_pos, false_neg, _ = M.counts(y, pred)
        denom = 2 * true_pos + false_pos + false_neg
        per_label[k] = np.divide(2 * true_pos, denom, out=np.zeros(y.shape[1]), where=denom > 0)
        micro[k] = 2 * true_pos.sum() / denom.sum() if denom.sum() else 0.0
    return {"micro_f1": micro, "macro_f1": per_label.mean(1), "per_label_f1": per_label}


def tune(y: np.ndarray, probs: np.ndarray, metric: str = "micro_f1", min_positives: int = 5,
         grid: np.ndarray = GRID) -> dict:
    """Thresholds of each strategy (a list of L floats each) and the curves they came from.

    fixed: 0.5. global: the grid value maximising `metric` (micro_f1 or macro_f1) over all labels.
    per_label: each label's own F1-maximising value; a label with fewer than `min_positives`
    positives keeps the global one (too few examples to tune on). Ties go to the lowest threshold.
    """
    n_labels = y.shape[1]
    curves = f1_curves(y, probs, grid)
    best_global = float(grid[int(np.argmax(curves[metric]))])
    per_label = grid[np.argmax(curves["per_label_f1"], axis=0)].astype(float)
    positives = y.sum(0)
    fallback = positives < min_positives
    per_label[fallback] = best_global
    return {
        "strategies": {
            "fixed": [0.5] * n_labels,
            "global": [best_global] * n_labels,
            "per_label": [round(float(t), 2) for t in per_label],
        },
        "global_threshold": best_global,
        "fallback_labels": np.flatnonzero(fallback).tolist(),
        "curves": curves,
    }


def apply(probs: np.ndarray, thresholds) -> np.ndarray:
    return probs >= np.asarray(thresholds)[None, :]


@dataclass(frozen=True)
class Policy:
    """How thresholds are tuned on dev (thresholds.metric, thresholds.min_positives) and which of them are applied
    (evaluate.thresholds): the one object the stages and the epoch picker share."""

    metric: str = "micro_f1"
    min_positives: int = 5
    strategy: str = "per_label"

    def tune(self, y: np.ndarray, probs: np.ndarray) -> dict:
        return tune(y, probs, self.metric, self.min_positives)

    def thresholds(self, y: np.ndarray, probs: np.ndarray) -> list[float]:
        """The applied strategy's thresholds, tuned on (y, probs)."""
        return self.tune(y, probs)["strategies"][self.strategy]

    def as_dict(self) -> dict:
        return asdict(self)
