"""`emotion-report`: the experiments side by side, from `dvc exp show --json`.

    emotion-report                      # every experiment of the current commit (HEAD)
    emotion-report --rev abc1234        # every experiment of another base commit
    emotion-report exp-a exp-b          # just these (names or revs)
    emotion-report exp-a exp-b --search exp-c exp-d   # and a dev-only table of the runs not chosen

Writes reports/experiments.md (a table with each row's target from reference/results.yaml, the
total train time, per row the `dvc exp run` command that reproduces it, per-label test F1 side by
side, and the search: what each tried setting gave on dev), reports/experiments.png (test micro/macro
F1, train time, parameters), reports/experiments_curves.png (per-epoch losses and dev F1 of each
row) and reports/experiments_per_label.png (per-label test F1 of each row). Curves and per-label
scores are read from each experiment's commit (`git show REV:dvclive/...`, `...:plots/eval/per_label.csv`).

Only experiments of one base commit are read, and rows whose code, data, CPU kind or precision differ are refused
(`--allow-mixed` puts them side by side anyway): a report compares like with like.

The rendered rows, with their curves and per-label scores, are kept beside the report (reports/experiments.json,
`--store`): a named experiment that `dvc exp show` no longer has (another session, another machine) is read from
there, and `emotion-compare-all` reuses a kept row while its code, params, data and CPU kind are this workspace's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from dvc.utils.serialize import load_yaml

from ..errors import UserError, one_line_errors
from ..files import atomic_path
from .charts import chart, curves_chart, per_label_chart
from .collect import (
    attach_artifacts,
    best_of_groups,
    check_like_with_like,
    collect,
    flatten,
    git_reader,
    read_store,
    seed_groups,
    taxonomy_of,
    write_store,
)
from .render import render


@one_line_errors
def main(argv=None, reader: Callable[[str, str], str | None] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="emotion-report", description=__doc__.split("\n")[0])
    ap.add_argument("experiments", nargs="*", help="experiment names or revs (default: all of this commit)")
    ap.add_argument("--json", help="read this `dvc exp show --json` output instead of running it")
    ap.add_argument("--out", default="reports/experiments.md")
    ap.add_argument("--chart", help="the chart (default: --out with .png; _curves and _per_label beside it)")
    ap.add_argument("--search", nargs="*", default=[], help="experiments tried and not chosen: a dev-only table")
    ap.add_argument("--params", default="params.yaml", help="defaults the rows are compared with")
    ap.add_argument("--reference", default="reference/results.yaml", help="targets per architecture")
    ap.add_argument("--rev", help="the base commit whose experiments are read (default: HEAD)")
    ap.add_argument("--store", help="the rows kept beside the report, read for named experiments that `dvc exp "
                                    "show` lacks, then rewritten (default: --out with .json)")
    ap.add_argument("--allow-mixed", action="store_true",
                    help="compare rows whose code, data, CPU kind or precision differ (refused by default)")
    args = ap.parse_args(argv)
    if args.json:
        try:
            exp = json.loads(Path(args.json).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{args.json}: not a readable `dvc exp show --json` output ({e})") from None
    else:
        r = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json",
                            *(["--rev", args.rev] if args.rev else [])], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise UserError(f"emotion-report: `dvc exp show --json` failed:\n{r.stderr}")
        exp = json.loads(r.stdout)
    base = next((e["rev"] for e in exp if e.get("rev") != "workspace" and str(e.get("rev")).startswith(args.rev or "")),
                args.rev)  # HEAD's full sha (dvc exp show lists it first), or --rev's
    store = Path(args.store or Path(args.out).with_suffix(".json"))
    args.chart = args.chart or str(Path(args.out).with_suffix(".png"))
    rows = collect(exp, args.experiments, base, stored=read_store(store) if args.experiments else ())
    search = collect(exp, args.search, base) if args.search else []
    rows = [r for r in rows if r not in search]
    if not rows:
        raise UserError("emotion-report: no experiments found; run some with `dvc exp run -S model.name=...`")
    if not Path(args.params).is_file():
        raise UserError(f"{args.params}: no such params file (--params)")
    defaults = flatten(load_yaml(args.params) or {})  # DVC's YAML 1.2 reader, as `dvc exp show` read the rows
    groups = seed_groups(rows, defaults)
    if not args.allow_mixed:
        check_like_with_like(rows + search, ("code", "data", "taxonomy", "cpu_kind"))
        for group in groups.values():
            check_like_with_like(group, ("precision",))
    attach_artifacts(rows, reader or git_reader)
    ref = Path(args.reference)
    targets = reference_targets(ref, taxonomy_of(rows[0]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text(render(rows, defaults, targets, search))
    write_store(rows, store)
    chart(groups, args.chart, targets)
    stem = Path(args.chart).with_suffix("")
    best = best_of_groups(groups)  # one line or bar per group: its best seed on dev
    curves_chart(best, f"{stem}_curves.png")
    per_label_chart(best, f"{stem}_per_label.png")
    print(f"{len(rows)} experiments -> {args.out} (rows kept in {store}), {args.chart}, {stem}_curves.png, "
          f"{stem}_per_label.png")


def reference_targets(path: Path, taxonomy: str) -> dict:
    """The reference implementation's figures per architecture for `taxonomy` (none where it published none)."""
    references = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    return (references.get(taxonomy) or {}).get("reference_project", {})


if __name__ == "__main__":
    main()
