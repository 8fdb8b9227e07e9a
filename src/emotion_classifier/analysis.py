"""Dataset statistics: label counts, labels per example, token lengths, label co-occurrence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import label_matrix


def cooccurrence(y: np.ndarray) -> dict[str, np.ndarray]:
    """Raw counts C[i, j] (diagonal = label count), conditional P(j | i) and Jaccard, all LxL."""
    y = y.astype(np.int64)
    counts = y.T @ y
    diag = np.diag(counts).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.where(diag[:, None] > 0, counts / diag[:, None], 0.0)
        union = diag[:, None] + diag[None, :] - counts
        jaccard = np.where(union > 0, counts / union, 0.0)
    return {"counts": counts, "conditional": conditional, "jaccard": jaccard}


def split_stats(df: pd.DataFrame, names: list[str], lengths: np.ndarray) -> dict[str, float]:
    """Flat statistics of one split; `lengths` are its token counts under the encoder's tokenizer."""
    y = label_matrix(df)
    per_example = y.sum(axis=1).astype(int)
    out: dict[str, float] = {"examples": len(df)}
    for k in (1, 2, 3, 4):
        out[f"labels_per_example_{k}"] = int((per_example == k).sum())
    out["labels_per_example_5plus"] = int((per_example >= 5).sum())
    out["token_length_mean"] = round(float(lengths.mean()), 3)
    for p in (50, 95, 99):
        out[f"token_length_p{p}"] = float(np.percentile(lengths, p))
    out["token_length_max"] = int(lengths.max())
    for name, c in zip(names, y.sum(axis=0).astype(int)):
        out[f"count_{name}"] = int(c)
    return out


def analyze(splits: dict[str, pd.DataFrame], names: list[str], token_lengths: dict[str, np.ndarray]):
    """Returns (flat metrics, label-distribution rows, train co-occurrence matrices)."""
    metrics: dict[str, float] = {}
    for s, df in splits.items():
        for k, v in split_stats(df, names, token_lengths[s]).items():
            metrics[f"{s}.{k}"] = v
    # Long format (label, series, count): one grouped bar per label, a colour per split.
    dist = pd.DataFrame(
        [(name, s, int(c)) for s, df in splits.items() for name, c in zip(names, label_matrix(df).sum(axis=0))],
        columns=["label", "series", "count"],
    )
    return metrics, dist, cooccurrence(label_matrix(splits["train"]))
