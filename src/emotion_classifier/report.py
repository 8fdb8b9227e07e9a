"""`emotion-report`: the experiments side by side, from `dvc exp show --json`.

    emotion-report                      # every experiment of the current commit
    emotion-report exp-a exp-b          # just these (names or revs)
    emotion-report exp-a exp-b --search exp-c exp-d   # and a dev-only table of the runs not chosen

Writes reports/experiments.md (a table with each row's target from reference/results.yaml, the
total train time, per row the `dvc exp run` command that reproduces it, per-label test F1 side by
side, and the search: what each tried setting gave on dev), reports/experiments.png (test micro/macro
F1, train time, parameters), reports/experiments_curves.png (per-epoch losses and dev F1 of each
row) and reports/experiments_per_label.png (per-label test F1 of each row). Curves and per-label
scores are read from each experiment's commit (`git show REV:dvclive/...`, `...:plots/eval/per_label.csv`).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from .io import atomic_path
from .paths import COMPARE_METRICS, EVAL_METRICS, INFERENCE_METRICS, LIVE_DIR, PER_LABEL, TRAIN_METRICS

COLUMNS = [  # (header, metrics file, key, format)
    ("test micro F1", EVAL_METRICS, "test_micro_f1", ".4f"),
    ("test macro F1", EVAL_METRICS, "test_macro_f1", ".4f"),
    ("micro P", EVAL_METRICS, "test_micro_precision", ".4f"),
    ("micro R", EVAL_METRICS, "test_micro_recall", ".4f"),
    ("hamming loss", EVAL_METRICS, "test_hamming_loss", ".4f"),
    ("ROC-AUC macro", EVAL_METRICS, "test_roc_auc_macro", ".4f"),
    ("dev macro F1", EVAL_METRICS, "dev_macro_f1", ".4f"),
    ("train time (s)", TRAIN_METRICS, "train_time_s", ".0f"),
    ("epoch (s)", TRAIN_METRICS, "epoch_time_s", ".0f"),
    ("parameters", TRAIN_METRICS, "params_total", ",.0f"),
    ("inference sent/s", INFERENCE_METRICS, "inference_sentences_per_s", ".0f"),
]


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def collect(exp_show: list, wanted: list[str] | None = None) -> list[dict]:
    """Rows {name, rev, params (flat), metrics {file: dict}} for experiments (and commits) in the JSON."""
    rows = []

    def visit(entry):
        data = entry.get("data") or {}
        name = entry.get("name") or entry.get("rev")
        if data.get("params"):
            row = {"name": name, "rev": entry.get("rev") or data.get("rev"),
                   "params": flatten((data["params"].get("params.yaml") or {}).get("data") or {}),
                   "metrics": {f: (m or {}).get("data") or {} for f, m in (data.get("metrics") or {}).items()}}
            rows.append(row)
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                rev.setdefault("name", exp.get("name"))
                visit(rev)

    for entry in exp_show:
        visit(entry)
    if wanted:
        def matches(r, w):  # a name, or a rev prefix
            return r["name"] == w or str(r["rev"]).startswith(w)

        def rank(r):  # position of the first request it matches: the order asked for
            return next((i for i, w in enumerate(wanted) if matches(r, w)), None)

        rows = sorted((r for r in rows if rank(r) is not None), key=rank)
        missing = [w for w in wanted if not any(matches(r, w) for r in rows)]
        if missing:
            raise SystemExit(f"emotion-report: no experiment named {', '.join(missing)} in `dvc exp show`")
    else:
        rows = [r for r in rows if r["name"] not in ("workspace",) and r["rev"] != "workspace"]
    return rows


CURVES = ("train_loss", "dev_loss", "dev_tuned_macro_f1", "dev_macro_f1")


def git_reader(rev: str, path: str) -> str | None:
    r = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else None


def attach_artifacts(rows: list[dict], read: Callable[[str, str], str | None]) -> None:
    """Per row: `curves` {metric: [per-epoch values]} from dvclive, `per_label` (DataFrame) from evaluate."""
    import pandas as pd

    for r in rows:
        r["curves"] = {}
        for k in CURVES:
            tsv = read(r["rev"], f"{LIVE_DIR}/plots/metrics/{k}.tsv")
            if tsv:
                r["curves"][k] = pd.read_csv(io.StringIO(tsv), sep="\t")[k].tolist()
        csv = read(r["rev"], PER_LABEL)
        r["per_label"] = pd.read_csv(io.StringIO(csv)) if csv else None


def per_label_table(rows: list[dict]) -> list[str]:
    """Test F1 per label (rows: labels by test support; columns: experiments); the worst of each column in bold."""
    have = [r for r in rows if r.get("per_label") is not None]
    if not have:
        return []
    base = have[0]["per_label"].set_index("label")
    labels = base.sort_values("support", ascending=False).index.tolist()
    f1 = {r["name"]: r["per_label"].set_index("label")["f1"] for r in have}
    worst = {n: set(s.nsmallest(5).index) for n, s in f1.items()}
    lines = ["", "## Per-label test F1", "",
             "Labels by test support; each column's five lowest in bold.", "",
             "| label | support | " + " | ".join(f1) + " |", "| --- | ---: |" + " ---: |" * len(f1)]
    for lab in labels:
        cells = [f"**{f1[n][lab]:.2f}**" if lab in worst[n] else f"{f1[n][lab]:.2f}" for n in f1]
        lines.append(f"| {lab} | {int(base.loc[lab, 'support'])} | " + " | ".join(cells) + " |")
    return lines


def curves_chart(rows: list[dict], path: str | Path) -> None:
    from .plots import _plt, _save

    plt = _plt()
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
    _save(fig, path)


def per_label_chart(rows: list[dict], path: str | Path) -> None:
    from .plots import _plt, _save

    have = [r for r in rows if r.get("per_label") is not None]
    if not have:
        return
    plt = _plt()
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
    _save(fig, path)


def differing(params: dict, defaults: dict) -> dict:
    return {k: v for k, v in params.items() if defaults.get(k) != v}


SEARCH_COLUMNS = [  # what a search run gave on dev (test is not looked at to choose)
    ("dev micro F1", EVAL_METRICS, "dev_micro_f1", ".4f"),
    ("dev macro F1", EVAL_METRICS, "dev_macro_f1", ".4f"),
    ("best epoch", TRAIN_METRICS, "best_epoch", "d"),
    ("epochs run", TRAIN_METRICS, "epochs_run", "d"),
    ("train time (s)", TRAIN_METRICS, "train_time_s", ".0f"),
]


# Params added after some experiments ran, with the value that trains as the code did before them: an older run
# lacks the key, and its command must still rerun it when main's value differs.
INTRODUCED = {"ensemble.members": [], "train.rdrop_alpha": 0.0}


def command(r: dict, defaults: dict) -> str:
    """`dvc exp run -S ...` with the params that differ from the defaults, leaving out the other
    architectures' sub-sections (the train stage does not read them)."""
    from .architectures import REGISTRY  # model.<architecture>.* are sections; model.mask_words.* is not

    introduced_later = {k: v for k, v in INTRODUCED.items() if k in defaults}  # what an older run trained with
    params = {**introduced_later, **r["params"]}
    name = params.get("model.name")
    other = tuple(f"model.{a}." for a in REGISTRY if a != name)
    diff = {k: v for k, v in differing(params, defaults).items() if not k.startswith(other)}
    if name is not None:  # the model is named even when it is main's: the command says what it trains
        diff["model.name"] = name
    return "dvc exp run" + "".join(f" -S {k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
                                   for k, v in sorted(diff.items()))


FORMERLY = {INFERENCE_METRICS: EVAL_METRICS}  # where older experiments kept these keys


def metric(r: dict, f: str, k: str):
    v = r["metrics"].get(f, {}).get(k)
    return v if v is not None or f not in FORMERLY else r["metrics"].get(FORMERLY[f], {}).get(k)


def _cells(r: dict, columns) -> list[str]:
    """Formatted values; a test figure with a bootstrap interval shows it: `0.6000 [0.588, 0.612]`."""
    cells = []
    for _, f, k, fmt in columns:
        v, lo, hi = metric(r, f, k), metric(r, f, f"{k}_lo"), metric(r, f, f"{k}_hi")
        cells.append("" if v is None else format(v, fmt) + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]"))
    return cells


def status(value: float, lo: float | None, hi: float | None, target: float) -> str:
    """'met' only when the whole interval clears the target; a point estimate inside it is 'within noise'."""
    if lo is None or hi is None:
        return "met (no interval)" if value >= target else "**not met** (no interval)"
    return "met" if lo > target else "**not met**" if hi < target else "within noise"


def target_cell(r: dict, targets: dict) -> str:
    """`micro / macro` target of the row's architecture and each one's status against its test interval."""
    t = targets.get(r["params"].get("model.name"))
    ev = r["metrics"].get(EVAL_METRICS, {})
    if not t or ev.get("test_micro_f1") is None:
        return ""
    states = [status(ev[f"test_{k}"], ev.get(f"test_{k}_lo"), ev.get(f"test_{k}_hi"), t[k])
              for k in ("micro_f1", "macro_f1")]
    return f"{t['micro_f1']:.3f} / {t['macro_f1']:.3f}: {states[0]} / {states[1]}"


def with_interval(r: dict, key: str) -> str:
    ev = r["metrics"].get(EVAL_METRICS, {})
    if ev.get(key) is None:
        return ""
    lo, hi = ev.get(f"{key}_lo"), ev.get(f"{key}_hi")
    return f"{ev[key]:.4f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")


# ---------------------------------------------------------------------------- seeds


def seed_groups(rows: list[dict], defaults: dict) -> dict[str, list[dict]]:
    """Rows that differ only in `seed`, under the command that runs them all (`-S seed=a,b,c`: DVC's grid)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        without_seed = {**r, "params": {k: v for k, v in r["params"].items() if k != "seed"}}
        groups.setdefault(command(without_seed, {k: v for k, v in defaults.items() if k != "seed"}), []).append(r)
    return groups


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


def _spread_cell(sp: dict | None) -> str:
    if sp is None:
        return ""
    if sp["std"] is None:
        return f"{sp['mean']:.4f} (1 seed)"
    return f"{sp['mean']:.4f} ± {sp['std']:.4f} ({sp['min']:.4f}–{sp['max']:.4f})"


def seed_table(groups: dict[str, list[dict]], targets: dict) -> list[str]:
    lines = ["", "## Architectures over seeds", "",
             "Experiments that differ only in `seed`, grouped: mean ± standard deviation (min–max) over n seeds. "
             "A target is met when the mean's interval (test resampling and seed spread together) clears it, "
             "within noise when the interval holds it.", "",
             "| command (`-S seed=...` added) | n | test micro F1 | test macro F1 | dev macro F1 | train time (s) "
             "| target micro / macro |", "| --- | ---: | --- | --- | --- | ---: | --- |"]
    for cmd, rows in groups.items():
        micro, macro = spread(rows, "test_micro_f1"), spread(rows, "test_macro_f1")
        dev = spread(rows, "dev_macro_f1")
        times = [metric(r, TRAIN_METRICS, "train_time_s") or 0 for r in rows]
        t = targets.get(rows[0]["params"].get("model.name"))
        target = "" if not t or micro is None else (
            f"{t['micro_f1']:.3f} / {t['macro_f1']:.3f}: "
            + " / ".join(status(sp["mean"], sp["lo"], sp["hi"], t[k]) for k, sp in (("micro_f1", micro),
                                                                                   ("macro_f1", macro))))
        lines.append(f"| `{cmd}` | {len(rows)} | {_spread_cell(micro)} | {_spread_cell(macro)} | {_spread_cell(dev)} "
                     f"| {np.mean(times):.0f} | {target} |")
    return lines + ranking(groups)


def _label(name: str, cmd: str) -> str:
    """An architecture with several settings in the ranking: its name and what its command sets."""
    settings = [a for a in cmd.split(" -S ")[1:] if not a.startswith(("ensemble.members=", "model.name="))]
    return f"{name} (`{' '.join(settings)}`)" if settings else f"{name} (main's settings)"


def ranking(groups: dict[str, list[dict]], key: str = "test_macro_f1") -> list[str]:
    """Groups by mean test macro F1; each next to the one below it: does the gap exceed the noise? Conservative:
    the two test intervals are combined as if independent, though both models saw the same test examples."""
    ranked = sorted(((spread(rows, key), rows[0]["params"].get("model.name", ""), cmd) for cmd, rows in groups.items()),
                    key=lambda g: -(g[0] or {"mean": -1})["mean"])
    ranked = [g for g in ranked if g[0] is not None and g[0]["lo"] is not None]
    if len(ranked) < 2:
        return []
    count = Counter(name for _, name, _ in ranked)
    ranked = [(sp, _label(name, cmd) if count[name] > 1 else name, cmd) for sp, name, cmd in ranked]
    lines = ["", "Ranking by mean test macro F1; a gap is beyond noise when it exceeds both groups' interval "
             "half-widths combined:", ""]
    for (a, name_a, _), (b, name_b, _) in zip(ranked, ranked[1:]):
        gap, noise = a["mean"] - b["mean"], float(np.hypot(a["hi"] - a["mean"], b["hi"] - b["mean"]))
        verdict = "beyond noise" if gap > noise else "within noise"
        lines.append(f"- {name_a} over {name_b}: {gap:+.4f} (noise ±{noise:.4f}): **{verdict}**")
    return lines


def best_of_groups(groups: dict[str, list[dict]]) -> list[dict]:
    """Each group's seed with the best dev macro F1 (dev decides, never test)."""
    return [max(rows, key=lambda r: metric(r, EVAL_METRICS, "dev_macro_f1") or -1) for rows in groups.values()]


def render(rows: list[dict], defaults: dict, targets: dict | None = None, search: list[dict] | None = None) -> str:
    targets = targets or {}
    groups = seed_groups(rows, defaults)
    head = "| experiment | model | " + " | ".join(c[0] for c in COLUMNS) + " | target micro / macro |"
    lines = ["# Experiments", "",
             "Generated by `emotion-report` from `dvc exp show --json`; thresholds tuned on dev, scored on test, "
             "with 95% bootstrap intervals over the test examples in brackets. Targets: the reference implementation "
             "of the same architecture (`reference/results.yaml`)."]
    lines += seed_table(groups, targets)
    lines += ["", "## Every experiment", "", head, "|" + " --- |" * 2 + " ---: |" * len(COLUMNS) + " --- |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params'].get('model.name', '')} | " + " | ".join(_cells(r, COLUMNS))
                     + f" | {target_cell(r, targets)} |")
    single = [r for r in rows if r["params"].get("model.name") != "ensemble"]
    total = sum(r["metrics"].get(TRAIN_METRICS, {}).get("train_time_s") or 0 for r in single)
    lines += ["", f"Train time of the {len(single)} single-architecture runs together: {total / 60:.1f} min (epochs "
                  "and frozen-encoder features, reused ones counted; dev scoring and the other stages are not). An "
                  "ensemble's train time is its members' training, which the runs of their architectures may have "
                  "done already (the model cache): it is not added again."]
    lines += ["", "## Reproduce", ""]
    for cmd, members in groups.items():
        if len(members) == 1:
            lines.append(f"- **{members[0]['name']}**: `{command(members[0], defaults)}`")
            continue
        seeds = ",".join(str(r["params"].get("seed", defaults.get("seed"))) for r in members)
        queued = cmd.replace("dvc exp run", "dvc exp run --queue", 1)
        names = ", ".join(f"**{r['name']}**" for r in members)
        lines.append(f"- {names}: `{queued} -S seed={seeds}`, then `dvc queue start`")
    if search:
        lines += ["", "## Search: what else was tried (dev only)", "",
                  "Settings tried and not chosen. Choices used dev only (macro F1 with per-label thresholds tuned "
                  "on dev) and train time against the budget; test was never used to choose.", "",
                  "| experiment | model | " + " | ".join(c[0] for c in SEARCH_COLUMNS) + " | command |",
                  "|" + " --- |" * 2 + " ---: |" * len(SEARCH_COLUMNS) + " --- |"]
        lines += [f"| {r['name']} | {r['params'].get('model.name', '')} | " + " | ".join(_cells(r, SEARCH_COLUMNS))
                  + f" | `{command(r, defaults)}` |" for r in search]
    lines += per_label_table(best_of_groups(groups))
    return "\n".join(lines) + "\n"


def group_label(rows: list[dict], cmd: str, count: Counter) -> str:
    name = rows[0]["params"].get("model.name", "")
    members = metric(rows[0], TRAIN_METRICS, "members")  # an ensemble's architectures
    label = _label(name, cmd) if count[name] > 1 else name
    return f"{label}\n({members})" if members else label


def colour(name: str) -> str:
    """One colour per architecture, the same in every chart (the ensemble last)."""
    from .architectures import REGISTRY

    order = [*REGISTRY, "ensemble"]
    return f"C{order.index(name) % 10}" if name in order else "C9"


def chart(groups: dict[str, list[dict]], path: str | Path, targets: dict | None = None) -> None:
    """One row per architecture (a seed group): test macro and micro F1 as the seed mean (dot), the seeds' range
    (thick bar) and the mean's interval, test resampling and seed spread together (whisker); the reference
    implementation's figure (red tick) and the TF-IDF baseline (grey dashes) marked; train time with what each
    run reused (cached encoder features, an ensemble's members) counted."""
    from .plots import _plt, _save

    targets = targets or {}
    count = Counter(rows[0]["params"].get("model.name", "") for rows in groups.values())
    order = sorted(groups, key=lambda c: -((spread(groups[c], "test_macro_f1") or {"mean": -1})["mean"]))
    labels = [group_label(groups[c], c, count) + f"  n={len(groups[c])}" for c in order]
    colours = [colour(groups[c][0]["params"].get("model.name", "")) for c in order]
    plt = _plt()
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
    minutes = [np.mean([(metric(r, TRAIN_METRICS, "train_time_s") or 0) / 60 for r in groups[c]]) for c in order]
    axes[2].barh(y, minutes, color=colours, alpha=0.8)
    axes[2].set(title="train time per run (min)", xlabel="minutes (reused work counted)")
    axes[2].grid(axis="x", alpha=0.3)
    for ax in axes:
        ax.set_yticks(y, labels if ax is axes[0] else [""] * len(order), fontsize=9)
        ax.set_ylim(len(order) - 0.5, -0.5)
    fig.suptitle("Architectures, each with its own recipe: dot = mean over seeds, thick bar = the seeds' range, "
                 "whisker = 95% interval of the mean (test resampling and seed spread)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def main(argv=None, reader: Callable[[str, str], str | None] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="emotion-report", description=__doc__.split("\n")[0])
    ap.add_argument("experiments", nargs="*", help="experiment names or revs (default: all of this commit)")
    ap.add_argument("--json", help="read this `dvc exp show --json` output instead of running it")
    ap.add_argument("--out", default="reports/experiments.md")
    ap.add_argument("--chart", default="reports/experiments.png")
    ap.add_argument("--search", nargs="*", default=[], help="experiments tried and not chosen: a dev-only table")
    ap.add_argument("--params", default="params.yaml", help="defaults the rows are compared with")
    ap.add_argument("--reference", default="reference/results.yaml", help="targets per architecture")
    args = ap.parse_args(argv)
    if args.json:
        exp = json.loads(Path(args.json).read_text())
    else:
        r = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", "-A"], capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"emotion-report: `dvc exp show --json` failed:\n{r.stderr}")
        exp = json.loads(r.stdout)
    rows = collect(exp, args.experiments)
    search = collect(exp, args.search) if args.search else []
    rows = [r for r in rows if r not in search]
    if not rows:
        raise SystemExit("emotion-report: no experiments found; run some with `dvc exp run -S model.name=...`")
    defaults = flatten(yaml.safe_load(Path(args.params).read_text()))
    attach_artifacts(rows, reader or git_reader)
    ref = Path(args.reference)
    targets = (yaml.safe_load(ref.read_text()) or {}).get("reference_project", {}) if ref.exists() else {}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(render(rows, defaults, targets, search))
    groups = seed_groups(rows, defaults)
    chart(groups, args.chart, targets)
    stem = Path(args.chart).with_suffix("")
    best = best_of_groups(groups)  # one line or bar per group: its best seed on dev
    curves_chart(best, f"{stem}_curves.png")
    per_label_chart(best, f"{stem}_per_label.png")
    print(f"{len(rows)} experiments -> {args.out}, {args.chart}, {stem}_curves.png, {stem}_per_label.png")
