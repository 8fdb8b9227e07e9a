"""Static figures (PNG) for the pipeline: label-by-label heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_path


def heatmap(matrix: np.ndarray, names: list[str], path: str | Path, title: str, fmt: str,
            xlabel: str = "label j", ylabel: str = "label i", mask_diagonal: bool = True) -> None:
    """A labelled LxL heatmap with each cell's value written in it.

    The diagonal (a label with itself) is greyed out: it dwarfs the off-diagonal cells
    and would flatten the colour scale.
    """
    plt = pyplot()
    m = np.asarray(matrix, dtype=float)
    shown = np.ma.masked_array(m, mask=np.eye(len(m), dtype=bool) if mask_diagonal else None)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
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
    save_figure(fig, path)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)


def confusion_grid(per_label: dict, names: list[str], path: str | Path, title: str) -> None:
    """The per-label 2x2 confusion matrices (rows: true no/yes, columns: predicted no/yes) in one figure."""
    plt = pyplot()
    n = len(names)
    cols = 7
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.3, rows * 2.5), dpi=100)
    for k, ax in enumerate(np.ravel(axes)):
        if k >= n:
            ax.axis("off")
            continue
        m = np.array([[per_label["tn"][k], per_label["fp"][k]], [per_label["fn"][k], per_label["tp"][k]]])
        share = m / np.maximum(m.sum(1, keepdims=True), 1)  # colour by row share: recall-like, readable
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_title(f"{names[k]}  F1 {per_label['f1'][k]:.2f}", fontsize=9)
        ax.set_xticks([0, 1], ["pred no", "pred yes"], fontsize=7)
        ax.set_yticks([0, 1], ["true no", "true yes"], fontsize=7)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    save_figure(fig, path)


def reliability(bins: dict, path: str | Path, title: str) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 7), dpi=100, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    width = 1.0 / len(bins["count"])
    used = bins["count"] > 0
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(bins["lower"][used], bins["frequency"][used], width=width, align="edge", alpha=0.7,
           edgecolor="black", label="observed frequency")
    ax.plot(bins["confidence"][used], bins["frequency"][used], "o-", color="C3", label="mean confidence")
    ax.set_ylabel("fraction of positives")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title(title)
    ax2.bar(bins["lower"], bins["count"], width=width, align="edge", color="C0", edgecolor="black")
    ax2.set_yscale("log")
    ax2.set_xlabel("predicted probability (every example x label)")
    ax2.set_ylabel("count")
    fig.tight_layout()
    save_figure(fig, path)
