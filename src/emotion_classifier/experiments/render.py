"""The experiments report in markdown: a table per seed group with targets, a ranking, every experiment, how to
reproduce each, the search, per-label F1."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..figures import HEADLINE
from ..paths import EVAL_METRICS, INFERENCE_METRICS, TRAIN_METRICS
from .collect import best_of_groups, command, metric, provenance, seed_groups
from .stats import spread, status

COLUMNS = [  # (header, metrics file, key, format)
    *((f"test {f.label}", EVAL_METRICS, f"test_{f.key}", f.fmt) for f in HEADLINE),
    ("dev macro F1", EVAL_METRICS, "dev_macro_f1", ".4f"),
    ("train time (s)", TRAIN_METRICS, "train_time_s", ".0f"),
    ("epoch (s)", TRAIN_METRICS, "epoch_time_s", ".0f"),
    ("parameters", TRAIN_METRICS, "params_total", ",.0f"),
    ("inference sent/s", INFERENCE_METRICS, "inference_sentences_per_s", ".0f"),
]


SEARCH_COLUMNS = [  # what a search run gave on dev (test is not looked at to choose)
    ("dev micro F1", EVAL_METRICS, "dev_micro_f1", ".4f"),
    ("dev macro F1", EVAL_METRICS, "dev_macro_f1", ".4f"),
    ("best epoch", TRAIN_METRICS, "best_epoch", "d"),
    ("epochs run", TRAIN_METRICS, "epochs_run", "d"),
    ("train time (s)", TRAIN_METRICS, "train_time_s", ".0f"),
]


def _cells(r: dict, columns) -> list[str]:
    """Formatted values; a test figure with a bootstrap interval shows it: `0.6000 [0.588, 0.612]`."""
    cells = []
    for _, f, k, fmt in columns:
        v, lo, hi = metric(r, f, k), metric(r, f, f"{k}_lo"), metric(r, f, f"{k}_hi")
        cells.append("" if v is None else format(v, fmt) + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]"))
    return cells


def target_cell(r: dict, targets: dict) -> str:
    """`micro / macro` target of the row's architecture and each one's status against its test interval."""
    t = targets.get(r["params"].get("model.name"))
    ev = r["metrics"].get(EVAL_METRICS, {})
    if not t or ev.get("test_micro_f1") is None:
        return ""
    states = [status(ev[f"test_{k}"], ev.get(f"test_{k}_lo"), ev.get(f"test_{k}_hi"), t[k])
              for k in ("micro_f1", "macro_f1")]
    return f"{t['micro_f1']:.3f} / {t['macro_f1']:.3f}: {states[0]} / {states[1]}"


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


def _spread_cell(sp: dict | None) -> str:
    if sp is None:
        return ""
    if sp["std"] is None:
        return f"{sp['mean']:.4f} (1 seed)"
    return f"{sp['mean']:.4f} ± {sp['std']:.4f} ({sp['min']:.4f}–{sp['max']:.4f})"


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
        times = [t for r in rows if (t := metric(r, TRAIN_METRICS, "train_time_s")) is not None]
        t = targets.get(rows[0]["params"].get("model.name"))
        target = "" if not t or micro is None else (
            f"{t['micro_f1']:.3f} / {t['macro_f1']:.3f}: "
            + " / ".join(status(sp["mean"], sp["lo"], sp["hi"], t[k]) for k, sp in (("micro_f1", micro),
                                                                                   ("macro_f1", macro))))
        lines.append(f"| `{cmd}` | {len(rows)} | {_spread_cell(micro)} | {_spread_cell(macro)} | {_spread_cell(dev)} "
                     f"| {f'{np.mean(times):.0f}' if times else 'unknown'} | {target} |")
    return lines + ranking(groups)


def _label(name: str, cmd: str) -> str:
    """An architecture with several settings in the ranking: its name and what its command sets."""
    settings = [a for a in cmd.split(" -S ")[1:] if not a.startswith(("ensemble.members=", "model.name="))]
    return f"{name} (`{' '.join(settings)}`)" if settings else f"{name} (main's settings)"


def provenance_line(rows: list[dict]) -> str:
    """Where the rows come from: base commit, CPU kind (or GPU), training precision."""
    def values(key):
        found = sorted({str(v) for v in (provenance(r)[key] for r in rows) if v is not None})
        return ", ".join(found) or "not recorded"

    bases = sorted({str(r.get("base") or "")[:7] for r in rows} - {""})
    return (f"Base commit {', '.join(f'`{b}`' for b in bases) or 'not recorded'}; CPU kind {values('cpu_kind')}; "
            f"training precision {values('precision')}.")


def render(rows: list[dict], defaults: dict, targets: dict | None = None, search: list[dict] | None = None) -> str:
    targets = targets or {}
    groups = seed_groups(rows, defaults)
    head = "| experiment | model | " + " | ".join(c[0] for c in COLUMNS) + " | target micro / macro |"
    lines = ["# Experiments", "",
             "Generated by `emotion-report` from `dvc exp show --json`; thresholds tuned on dev, scored on test, "
             "with 95% bootstrap intervals over the test examples in brackets. Targets: the reference implementation "
             "of the same architecture (`reference/results.yaml`).", "", provenance_line(rows)]
    lines += seed_table(groups, targets)
    lines += ["", "## Every experiment", "", head, "|" + " --- |" * 2 + " ---: |" * len(COLUMNS) + " --- |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params'].get('model.name', '')} | " + " | ".join(_cells(r, COLUMNS))
                     + f" | {target_cell(r, targets)} |")
    single = [r for r in rows if r["params"].get("model.name") != "ensemble"]
    known = [t for r in single if (t := r["metrics"].get(TRAIN_METRICS, {}).get("train_time_s")) is not None]
    lines += ["", f"Train time of the {len(known)} single-architecture runs whose time is known (of {len(single)}) "
                  f"together: {sum(known) / 60:.1f} min (epochs "
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
