"""Statistics over experiments: a figure's spread over seeds with the mean's interval, and whether a target is met."""

from __future__ import annotations

import numpy as np

from ..paths import EVAL_METRICS


def status(value: float, lo: float | None, hi: float | None, target: float) -> str:
    """'met' only when the whole interval clears the target; a point estimate inside it is 'within noise'."""
    if lo is None or hi is None:
        return "met (no interval)" if value >= target else "**not met** (no interval)"
    return "met" if lo > target else "**not met**" if hi < target else "within noise"


def spread(rows: list[dict], key: str) -> dict | None:
    """Mean, std (n-1), min, max over seeds, and the mean's interval: test resampling (the rows' mean bootstrap
    half-width) and seed-to-seed spread (t quantile, n-1 dof) combined."""
    from scipy.stats import t as student_t

    ev = [r["metrics"].get(EVAL_METRICS, {}) for r in rows]
    values = np.array([e[key] for e in ev if e.get(key) is not None], dtype=float)
    if not len(values):
        return None
    halves = [(e[f"{key}_hi"] - e[f"{key}_lo"]) / 2 for e in ev if e.get(f"{key}_lo") is not None]
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    seed_half = student_t.ppf(0.975, len(values) - 1) * std / np.sqrt(len(values)) if std is not None else 0.0
    half = float(np.hypot(np.mean(halves), seed_half)) if halves else None
    mean = float(values.mean())
    return {"n": len(values), "mean": mean, "std": std, "min": float(values.min()), "max": float(values.max()),
            "lo": None if half is None else mean - half, "hi": None if half is None else mean + half}
