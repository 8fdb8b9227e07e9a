"""The experiments' charts: architectures side by side (seed mean, range, interval, reference, baseline, train
time), training curves, per-label F1."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..paths import COMPARE_METRICS, TRAIN_METRICS
from ..plots import pyplot, save_figure
from .collect import metric
from .render import group_label
from .stats import spread


def colour(name: str) -> str:
    """One colour per architecture, the same in every chart (the ensemble last)."""
    from ..architectures import REGISTRY

    order = [*REGISTRY, "ensemble"]
    return f"C{order.index(name) % 10}" if name in order else "C9"


def chart(groups: dict[str, list[dict]], path: str | Path, targets: dict | None = None) -> None:
    """One row per architecture (a seed group): test macro and micro F1 as the seed mean (dot), the seeds' range
    (thick bar) and the mean's interval, test resampling and seed spread together (whisker); the reference
    implementation's figure (red tick) and the TF-IDF baseline (grey dashes) marked; train time with what each
    run reused (cached encoder features, an ensemble's members) counted."""
    targets = targets or {}
    count = Counter(rows[0]["params"].get("model.name", "") for rows in groups.values())
    order = sorted(groups, key=lambda c: -((spread(groups[c], "test_macro_f1") or {"mean": -1})["mean"]))
    labels = [group_label(groups[c], c, count) + f"  n={len(groups[c])}" for c in order]
    colours = [colour(groups[c][0]["params"].get("model.name", "")) for c in order]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.5 * len(order) + 2.2), dpi=100,
                             gridspec_kw={"width_ratios": [2, 2, 1.2]})
    y = np.arange(len(order))
    for ax, key, title in ((axes[0], "macro_f1", "test macro F1"), (axes[1], "micro_f1", "test micro F1")):
        for i, cmd in enumerate(order):
            sp = spread(groups[cmd], f"test_{key}")
            if sp is None:
                continue
            if sp["lo"] is not None:
                ax.errorbar(sp["mean"], i, xerr=[[sp["mean"] - sp["lo"]], [sp["hi"] - sp["mean"]]], fmt="none",
                            ecolor=colours[i], elinewidth=1, capsize=4)
            ax.plot([sp["min"], sp["max"]], [i, i], color=colours[i], lw=6, alpha=0.45, solid_capstyle="butt")
            ax.plot(sp["mean"], i, "o", color=colours[i], ms=7)
            target = targets.get(groups[cmd][0]["params"].get("model.name"), {}).get(key)
            if target is not None:
                ax.plot(target, i, "|", color="red", ms=16, mew=2.5)
        base = [metric(r, COMPARE_METRICS, f"baseline_{key}") for rows in groups.values() for r in rows]
        base = [b for b in base if b is not None]
        if base:
            ax.axvline(float(np.mean(base)), color="grey", ls="--", lw=1, label=f"TF-IDF baseline {np.mean(base):.3f}")
        ax.plot([], [], "|", color="red", ms=12, mew=2.5, label="reference implementation")
        ax.set(title=title, xlabel=title.replace("test ", "test split, "))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    minutes = [_mean_minutes([metric(r, TRAIN_METRICS, "train_time_s") for r in groups[c]]) for c in order]
    axes[2].barh(y, minutes, color=colours, alpha=0.8)
    axes[2].set(title="train time per run (min)", xlabel="minutes (reused work counted)")
    axes[2].grid(axis="x", alpha=0.3)
    for ax in axes:
        ax.set_yticks(y, labels if ax is axes[0] else [""] * len(order), fontsize=9)
        ax.set_ylim(len(order) - 0.5, -0.5)
    fig.suptitle("Architectures, each with its own recipe: dot = mean over seeds, thick bar = the seeds' range, "
                 "whisker = 95% interval of the mean (test resampling and seed spread)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def curves_chart(rows: list[dict], path: str | Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), dpi=100)
    from matplotlib.ticker import MaxNLocator

    for r in rows:
        c, name = r.get("curves") or {}, r["params"].get("model.name", "")
        if name == "ensemble":  # its dvclive/ is its first member's epochs: that architecture's row has them
            continue
        for k, style in (("train_loss", ":"), ("dev_loss", "-")):
            if k in c:
                axes[0].plot(range(1, len(c[k]) + 1), c[k], style, color=colour(name), marker="o", ms=3,
                             label=f"{r['name']} {k.split('_')[0]}")
        k = "dev_tuned_macro_f1" if "dev_tuned_macro_f1" in c else "dev_macro_f1"
        if k in c:
            axes[1].plot(range(1, len(c[k]) + 1), c[k], "-", color=colour(name), marker="o", ms=3,
                         label=r["name"] + ("" if k == "dev_tuned_macro_f1" else " (at 0.5)"))
    axes[0].set(title="loss per epoch (dotted: train, solid: dev)", xlabel="epoch",
                ylabel="loss (each run's own: BCE, weighted BCE, ...)")
    axes[1].set(title="dev macro F1 per epoch (per-label thresholds tuned on dev)", xlabel="epoch",
                ylabel="dev macro F1")
    longest = max([len(v) for r in rows for v in (r.get("curves") or {}).values()] or [1])
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, longest + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def per_label_chart(rows: list[dict], path: str | Path) -> None:
    have = [r for r in rows if r.get("per_label") is not None]
    if not have:
        return
    plt = pyplot()
    base = have[0]["per_label"].sort_values("support", ascending=False)
    labels = base["label"].tolist()
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(labels) * max(1, len(have)) ** 0.5 + 1.5), dpi=100)
    h = 0.8 / len(have)
    for i, r in enumerate(have):
        f1 = r["per_label"].set_index("label").loc[labels, "f1"].to_numpy()
        ax.barh([j - 0.4 + h * (i + 0.5) for j in range(len(labels))], f1, h, label=r["name"],
                color=colour(r["params"].get("model.name", "")))
    ax.set_yticks(range(len(labels)), [f"{lab} ({int(n)})" for lab, n in zip(labels, base["support"])], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="test F1 (per-label thresholds tuned on dev)", title="per-label test F1 (label, test support)",
           xlim=(0, 1))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def _mean_minutes(seconds: list) -> float:
    """The mean of the known train times, in minutes; NaN (no bar) when none is known: unknown is not 0."""
    known = [s for s in seconds if s is not None]
    return float(np.mean(known)) / 60 if known else float("nan")
