"""Ensembles: a weighted average of the members' probabilities, the weights fitted on dev. Plain numpy: inference
and tune_thresholds use it; ensemble_search (the dev-only table of candidate ensembles) loads models."""

from __future__ import annotations

import numpy as np


def average(member_probs: list[np.ndarray], weights) -> np.ndarray:
    return np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(member_probs), axes=1).astype(np.float32)


def fit_weights(member_probs: list[np.ndarray], y: np.ndarray, iterations: int = 500, tol: float = 1e-9
                ) -> np.ndarray:
    """Mixture weights (>= 0, summing to 1) that minimise the binary cross-entropy of the averaged
    probabilities on (dev) labels y. The averaged model is a mixture: each label's likelihood is
    sum_k w_k L_k, L_k = p_k where y = 1 and 1 - p_k where y = 0, so EM fits w and never lowers the
    likelihood. A smooth, proper score rather than F1: it does not chase the thresholds' noise."""
    y = y.astype(bool)
    like = np.stack([np.where(y, p, 1 - p).ravel() for p in member_probs]).astype(np.float64)
    like = np.clip(like, 1e-7, 1.0)
    w = np.full(len(member_probs), 1.0 / len(member_probs))
    last = -np.inf
    for _ in range(iterations):
        mix = w @ like
        loglik = float(np.log(mix).mean())
        if loglik - last < tol:
            break
        last = loglik
        w = w * (like / mix).mean(axis=1)
        w /= w.sum()
    return w


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the dev cross-entropy of sigmoid(logit / T): one number that makes an
    over- or under-confident model's probabilities comparable with the others' before they are averaged."""
    from scipy.optimize import minimize_scalar

    return float(minimize_scalar(lambda t: cross_entropy(tempered(probs, t), y), bounds=(0.05, 20),
                                 method="bounded").x)


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(y.astype(bool), np.log(p), np.log1p(-p))))


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    return (1 / (1 + np.exp(-logit(probs) / temperature))).astype(np.float32)


def logit(probs: np.ndarray) -> np.ndarray:
    """The inverse of the sigmoid, clipped away from 0 and 1 (float64)."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def held_out_predictions(y: np.ndarray, probs: np.ndarray, metric: str = "micro_f1", min_positives: int = 5,
                         folds: int = 5, repeats: int = 4):
    """Per repeat, the folds of dev and dev's predictions, each fold's made with per-label thresholds tuned on the
    other folds."""
    from . import thresholds as T

    for repeat in range(repeats):
        parts = np.array_split(np.random.default_rng(repeat).permutation(len(y)), folds)
        pred = np.zeros(y.shape, dtype=np.int8)
        for k in range(folds):
            fit_on = np.concatenate([parts[j] for j in range(folds) if j != k])
            tuned = T.tune(y[fit_on], probs[fit_on], metric, min_positives)["strategies"]["per_label"]
            pred[parts[k]] = T.apply(probs[parts[k]], tuned)
        yield parts, pred


def held_out_f1(y: np.ndarray, held_out) -> tuple[float, float]:
    """Macro and micro F1 of `held_out_predictions`, averaged over folds and repeats."""
    from . import metrics as M

    macro, micro = [], []
    for parts, pred in held_out:
        macro += [M.macro_f1(y[part], pred[part]) for part in parts]
        micro += [M.micro_f1(y[part], pred[part]) for part in parts]
    return float(np.mean(macro)), float(np.mean(micro))


def cross_validated_f1(y: np.ndarray, probs: np.ndarray, metric: str = "micro_f1", min_positives: int = 5,
                       folds: int = 5, repeats: int = 4) -> tuple[float, float]:
    """Macro and micro F1 with per-label thresholds tuned on the other folds of dev, averaged over folds
    and repeats: dev's own tuned F1 flatters every model (the thresholds fit its noise), this does not."""
    return held_out_f1(y, held_out_predictions(y, probs, metric, min_positives, folds, repeats))
