"""`emotion-compare-all` (`make compare`): every architecture and the ensemble as DVC experiments, then the report.

Each architecture runs with its own recipe, once per seed; each that keeps its encoder runs once more with every
other registered encoder (the base-size all-mpnet-base-v2: `--encoders ""` skips it).

    emotion-compare-all --seeds 0,1,2                  # run what is missing, then the report
    emotion-compare-all --seeds 0 --set train.epochs=1 --set data.max_examples=300   # a quick look
    emotion-compare-all --seeds 0,1,2 --share 1/2 --push origin   # this machine's half, pushed as it finishes
    emotion-compare-all --seeds 0,1,2 --report-only    # after `dvc exp pull origin <names>`: the report

One experiment at a time (`dvc exp run --temp`: outside the workspace, which stays as it is; its log streams here),
named `<prefix>-<architecture>[-<encoder>]-s<seed>` (with `--set`, `<prefix>-<tag>-...`: a quick look never stands
in for the full run). Resumable, keyed on content: an experiment of that name whose recorded params, data and code
(every code dep's hash) equal what this invocation runs is finished and skipped, whether `dvc exp show` has it at
this commit or the report's kept rows do (reports/experiments.json, from an earlier commit or session), and whose
own record of its environment (library versions, machine kind, teacher and encoder content) is this one's.
One that differs is removed (kept: left) and runs again, and the log says why. The ensembles run last: their
members are the architectures' own runs, copied from the model cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UserError, one_line_errors
from ..paths import EVAL_METRICS
from .collect import CODE, code_deps, collect, flatten, read_store

ENSEMBLE = "ensemble"


def plan(architectures: list[str], seeds: list[int], prefix: str, extra: list[str] = (),
         encoder_rows: list[tuple[str, str, str]] = ()) -> list[tuple[str, list[str]]]:
    """(experiment name, `-S` overrides) for each architecture x seed, then each (architecture, encoder, its short
    name) of `encoder_rows` x seed, the ensembles last. Extra overrides (`--set`) put a tag of theirs in the name."""
    if extra:
        prefix = f"{prefix}-{quick_tag(extra)}"
    rows = [(f"{arch}", [f"model.name={arch}"]) for arch in architectures if arch != ENSEMBLE]
    rows += [(f"{arch}-{short}", [f"model.name={arch}", f"model.encoder={enc}"]) for arch, enc, short in encoder_rows]
    rows += [(ENSEMBLE, [f"model.name={ENSEMBLE}"])] if ENSEMBLE in architectures else []
    return [(f"{prefix}-{name}-s{seed}", [*sets, f"seed={seed}"]) for name, sets in rows for seed in seeds]


def quick_tag(extra: list[str]) -> str:
    """A quick look's tag (its `--set` overrides, in any order): in its experiments' names and its report's folder."""
    return hashlib.sha256(json.dumps(sorted(extra)).encode()).hexdigest()[:6]


def report_paths(out: str | None, chart: str | None, extra: list[str]) -> tuple[Path, str]:
    """The report and its chart: a quick look's in reports/quick-TAG/, so it never overwrites the full report."""
    out_path = Path(out or (f"reports/quick-{quick_tag(extra)}/experiments.md" if extra else "reports/experiments.md"))
    return out_path, chart or str(out_path.with_suffix(".png"))


def kept_seeds(store: Path, names: set[str]) -> set[int]:
    """The seeds of rows kept in `store` under any of `names` with its seed replaced: a report of seed 1 keeps the
    finished rows of seed 0 (rows are never dropped because this invocation did not ask for them)."""
    import re

    seeds = set()
    for row in read_store(store):
        m = re.fullmatch(r"(.*)-s(\d+)", str(row.get("name")))
        if m and any(n.rsplit("-s", 1)[0] == m.group(1) for n in names):
            seeds.add(int(m.group(2)))
    return seeds


def my_share(runs: list, share: str | None) -> list:
    """Every n-th run, from the k-th on, for `--share k/n` (each machine of n runs one share)."""
    if not share:
        return runs
    try:
        k, n = (int(x) for x in share.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        raise UserError(f"emotion-compare-all: --share {share!r}: expected k/n with 1 <= k <= n, e.g. 1/2") from None
    return runs[k - 1::n]


def dvc(*args: str, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True, check=False)


def experiments() -> tuple[dict[str, dict], dict]:
    """This commit's experiments by name (`dvc exp show`: HEAD only), and the workspace's row."""
    r = dvc("exp", "show", "--json")
    if r.returncode != 0:
        raise UserError(f"emotion-compare-all: `dvc exp show --json` failed:\n{r.stderr.strip()}")
    exp = json.loads(r.stdout)
    base = next((e.get("rev") for e in exp if e.get("rev") != "workspace"), None)
    rows = collect(exp, base=base) if base else []
    ws = next(((e.get("data") or {}) for e in exp if e.get("rev") == "workspace"), {})
    workspace = {"deps": {p: (d or {}).get("hash") for p, d in (ws.get("deps") or {}).items()}}
    return {row["name"]: row for row in rows if row["rev"] != base}, workspace


def expected_params(sets: list[str], params_file: str = "params.yaml") -> dict:
    """params.yaml flattened, with the `-S key=value` overrides, read as `dvc exp run` and `dvc exp show` read them:
    the overrides applied by DVC's own code (Hydra's grammar: `1e-3` is a number) to a copy, the file parsed by
    DVC's YAML 1.2 reader (PyYAML's 1.1 reads `3e-4` as a string, and every finished run looked changed)."""
    import shutil
    import tempfile

    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "params.yaml"
        shutil.copyfile(params_file, copy)
        if sets:
            apply_overrides(copy, list(sets))
        return flatten(load_yaml(copy) or {})


def differs(row: dict, sets: list[str], workspace: dict) -> str | None:
    """Why a finished experiment is not the run `sets` asks for (params or data), or None when it is."""
    want = expected_params(sets)
    diff = [f"{k} {row['params'].get(k)!r} -> {want.get(k)!r}" for k in sorted(set(want) | set(row["params"]))
            if row["params"].get(k) != want.get(k)]
    if diff:
        return "params " + ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
    raw = str(want.get("data.raw_dir"))
    mine, theirs = workspace["deps"].get(raw), row.get("deps", {}).get(raw)
    if mine and theirs and mine != theirs:
        return f"data ({raw} {theirs[:8]} -> {mine[:8]})"
    return None


def workspace_code() -> dict[str, str]:
    """Each code dep of dvc.yaml's stages with the hash DVC gives it in this workspace now (what a run records)."""
    from dvc.repo import Repo

    with Repo() as repo:
        return {str(dep.def_path): dep.get_hash().value for stage in repo.index.stages for dep in stage.deps
                if str(dep.def_path).startswith(CODE)}


def expected_environment(sets: list[str]) -> dict:
    """The environment (training.identity.environment, per model) the run `sets` asks for would record here."""
    from ..params import ENSEMBLE as ENSEMBLE_NAME
    from ..params import from_tree, member_params, resolve
    from ..paths import TEACHERS_DIR
    from ..training.identity import environment

    params = from_tree(unflatten(expected_params(sets)))
    if params.model.name != ENSEMBLE_NAME:
        return {"models": [environment(resolve(params, TEACHERS_DIR))]}
    return {"models": [environment(resolve(member_params(params, i), TEACHERS_DIR))
                       for i in range(len(params.ensemble.members))]}


def unflatten(flat: dict) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}: expected_params' keys back into params.yaml's tree."""
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def environment_differs(recorded: dict | None, expected: dict) -> str | None:
    """Why a finished run's recorded environment is not what this run would stand on, or None."""
    if not recorded or len(recorded.get("models", [])) != len(expected["models"]):
        return "environment not recorded (a run older than metrics/environment.json)" if not recorded else \
            "environment of another number of models"
    for theirs, mine in zip(recorded["models"], expected["models"]):
        libs = [f"{k} {theirs.get('libraries', {}).get(k)} -> {v}" for k, v in mine["libraries"].items()
                if theirs.get("libraries", {}).get(k) != v]
        if libs:
            return f"libraries {', '.join(libs)}"
        if theirs.get("machine") != mine["machine"]:
            return f"ran on {theirs.get('machine')}, this machine is {mine['machine']}"
        for part in ("teacher", "encoder"):
            if theirs.get(part) != mine[part]:
                return f"{part} file content {str(theirs.get(part))[:8]} -> {str(mine[part])[:8]}"
    return None


def code_differs(row: dict, code: dict[str, str]) -> str | None:
    mine = code_deps(row)
    changed = sorted(p for p in set(mine) | set(code) if mine.get(p) != code.get(p))
    return f"code {', '.join(changed[:3])}{' and more' if len(changed) > 3 else ''}" if changed else None


def finished(runs: list[tuple[str, list[str]]], extra: list[str], remove_stale: bool, store: Path) -> set[str]:
    """The names in `runs` finished with exactly these params, data, code and environment (each run's own record of
    its libraries, machine kind, teacher and encoder: what the run id holds besides): at this commit (`dvc exp
    show`), or kept in `store` by an earlier report. One that differs says so; with `remove_stale`, an experiment
    is removed (it runs again under its name)."""
    from .collect import git_reader, run_environment

    found, workspace = experiments()
    kept = {r["name"]: r for r in read_store(store)}
    code, done = workspace_code(), set()
    for name, sets in runs:
        head = found.get(name)  # a queued or failed one has no eval metrics: it runs again
        if head is not None and head["metrics"].get(EVAL_METRICS):
            why = (differs(head, sets + extra, workspace) or code_differs(head, code)
                   or environment_differs(run_environment(head["rev"], git_reader), expected_environment(sets + extra)))
            if why is None:
                done.add(name)
                continue
            print(f"emotion-compare-all: {name} finished with other settings ({why})"
                  + ("; removed, it runs again" if remove_stale else "; left out of the report"), flush=True)
            if remove_stale:
                if dvc("exp", "remove", name).returncode != 0:
                    raise UserError(f"emotion-compare-all: `dvc exp remove {name}` failed; remove it by hand")
                head = None
        if name in kept and head is None:  # the report reads `dvc exp show` first: only a name it lacks is kept's
            why = (differs(kept[name], sets + extra, workspace) or code_differs(kept[name], code)
                   or environment_differs(kept[name].get("environment"), expected_environment(sets + extra)))
            if why is None:
                done.add(name)
            else:
                print(f"emotion-compare-all: {name} kept in {store} is another run ({why}); it runs again", flush=True)
    return done


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_all(runs: list[tuple[str, list[str]]], extra: list[str], push: str | None, store: Path) -> list[str]:
    """Run what has not finished, one at a time, with progress; returns the names that failed."""
    done = finished(runs, extra, remove_stale=True, store=store)
    todo = [(name, sets) for name, sets in runs if name not in done]
    print(f"emotion-compare-all: {len(runs)} experiments, {len(runs) - len(todo)} finished already, "
          f"{len(todo)} to run", flush=True)
    failed, took = [], []
    for i, (name, sets) in enumerate(todo, 1):
        left = f"; about {_minutes(sum(took) / len(took) * (len(todo) - i + 1))} left" if took else ""
        overrides = [a for s in sets + extra for a in ("-S", s)]
        print(f"\n=== [{i}/{len(todo)}] {name}: dvc exp run --temp -n {name} {' '.join(overrides)}{left}", flush=True)
        t0 = time.time()
        r = dvc("exp", "run", "--temp", "-n", name, *overrides, capture=False)
        took.append(time.time() - t0)
        if r.returncode != 0:
            failed.append(name)
            print(f"=== {name} failed (exit {r.returncode}); the rest go on", flush=True)
            continue
        print(f"=== {name} finished in {_minutes(took[-1])}", flush=True)
        if push and dvc("exp", "push", push, name, capture=False).returncode != 0:
            print(f"=== {name}: `dvc exp push {push} {name}` failed; push it by hand later", flush=True)
    return failed


def encoder_rows(architectures: list[str], encoders: list[str]) -> list[tuple[str, str, str]]:
    """(architecture, encoder, short name): each architecture that keeps its encoder (the registry says which) with
    each of `encoders`, a registered one or a local encoder folder (named by the folder)."""
    import re

    from ..architectures import REGISTRY
    from ..encoder import ENCODERS

    unknown = [e for e in encoders if e not in ENCODERS and not Path(e).is_dir()]
    if unknown:
        raise UserError(f"emotion-compare-all: unknown encoder {', '.join(unknown)}; choose from "
                         f"{', '.join(ENCODERS)} or give an encoder folder")
    short = {e: ENCODERS[e].short if e in ENCODERS else re.sub(r"[^\w.]+", "_", Path(e).name) for e in encoders}
    return [(a, e, short[e]) for a in architectures if a in REGISTRY and REGISTRY[a].keeps_encoder
            for e in encoders]


@one_line_errors
def main(argv=None) -> None:
    from ..architectures import REGISTRY
    from ..encoder import ENCODERS
    from ..params import load_params
    from . import report

    ap = argparse.ArgumentParser(prog="emotion-compare-all", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--architectures", default=",".join([*REGISTRY, ENSEMBLE]),
                    help="comma-separated model.name values (default: every registered one and the ensemble)")
    ap.add_argument("--encoders", default=None, metavar="NAMES",
                    help="comma-separated encoders to run each encoder-keeping architecture with once more "
                         "(default: every registered one but params.yaml's; \"\" for none, on a slow machine)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more `dvc exp run -S` for every experiment (repeatable), e.g. train.epochs=1")
    ap.add_argument("--prefix", default="cmp", help="experiment names: PREFIX-ARCHITECTURE-sSEED")
    ap.add_argument("--share", help="k/n: run every n-th experiment from the k-th (one of n machines)")
    ap.add_argument("--push", metavar="GIT_REMOTE", help="`dvc exp push` each finished experiment there")
    ap.add_argument("--report-only", action="store_true", help="no runs: the report over what has finished")
    ap.add_argument("--out", help="the report (default reports/experiments.md; a quick look's: "
                                  "reports/quick-TAG/experiments.md, never the full report)")
    ap.add_argument("--chart", help="its chart (default: beside --out, experiments.png)")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UserError(f"emotion-compare-all: --seeds {args.seeds!r}: expected integers such as 0,1,2") from None
    archs = [a.strip() for a in args.architectures.split(",") if a.strip()]
    unknown = [a for a in archs if a not in REGISTRY and a != ENSEMBLE]
    if unknown:
        raise UserError(f"emotion-compare-all: unknown architecture {', '.join(unknown)}; choose from "
                         f"{', '.join([*REGISTRY, ENSEMBLE])}")
    bad = [s for s in args.set if "=" not in s]
    if bad:
        raise UserError(f"emotion-compare-all: --set {bad[0]!r}: expected KEY=VALUE, e.g. train.epochs=1")
    default = load_params().model.encoder
    encoders = ([e for e in ENCODERS if e != default] if args.encoders is None
                else [e.strip() for e in args.encoders.split(",") if e.strip()])
    runs = plan(archs, seeds, args.prefix, args.set, encoder_rows(archs, encoders))
    out, chart = report_paths(args.out, args.chart, args.set)
    store = out.with_suffix(".json")  # the report's kept rows (emotion-report --store)
    failed = [] if args.report_only else run_all(my_share(runs, args.share), args.set, args.push, store)
    more = kept_seeds(store, {name for name, _ in runs}) - set(seeds)
    reported = runs + plan(archs, sorted(more), args.prefix, args.set, encoder_rows(archs, encoders))
    have = finished(reported, args.set, remove_stale=False, store=store)
    present = [name for name, _ in reported if name in have]
    missing = [name for name, _ in runs if name not in have]
    if missing:
        print(f"emotion-compare-all: not (yet) here: {', '.join(missing)}"
              + (" (another machine's share? `dvc exp pull <remote> <names>`)" if args.share or args.report_only
                 else ""))
    if present:
        report.main([*present, "--out", str(out), "--chart", chart])
    if failed:
        raise UserError(f"emotion-compare-all: {len(failed)} failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
