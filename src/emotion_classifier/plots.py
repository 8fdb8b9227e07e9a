"""Static figures (PNG) for the pipeline: label-by-label heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path


def heatmap(matrix: np.ndarray, names: list[str], path: str | Path, title: str, fmt: str,
            xlabel: str = "label j", ylabel: str = "label i", mask_diagonal: bool = True) -> None:
    """A labelled LxL heatmap with each cell's value written in it.

    The diagonal (a label with itself) is greyed out: it dwarfs the off-diagonal cells
    and would flatten the colour scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    shown = np.ma.masked_array(m, mask=np.eye(len(m), dtype=bool) if mask_diagonal else None)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")
    fig, ax = plt.subplots(figsize=(15, 13), dpi=100)
    im = ax.imshow(shown, cmap=cmap, interpolation="nearest")
    n = len(names)
    ax.set_xticks(range(n), names, rotation=90, fontsize=9)
    ax.set_yticks(range(n), names, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=13)
    vmax = shown.max() if shown.count() else 1.0
    for i in range(n):
        for j in range(n):
            if mask_diagonal and i == j:
                continue
            v = m[i, j]
            if v == 0:
                continue
            colour = "black" if v > 0.6 * vmax else "white"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=5.5, color=colour)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
