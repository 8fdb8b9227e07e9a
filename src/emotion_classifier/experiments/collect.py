"""Experiments as rows: from `dvc exp show --json` (params flattened, metrics per file), their per-epoch curves and
per-label scores from each one's commit, the command that reruns each, and rows grouped by all but the seed."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..paths import EVAL_METRICS, INFERENCE_METRICS, LIVE_DIR, PER_LABEL, RUN_ENVIRONMENT, TRAIN_METRICS


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def collect(exp_show: list, wanted: list[str] | None = None, base: str | None = None,
            stored: list[dict] = ()) -> list[dict]:
    """Rows {name, rev, base, params (flat), metrics {file: dict}, deps {path: hash}} for experiments (and commits)
    in the JSON; with `base`, only that commit's (a rev or its prefix) and its experiments. A wanted name that is not
    there is taken from `stored` (rows an earlier report kept, `read_store`)."""
    rows = []

    def visit(entry, baseline):
        data = entry.get("data") or {}
        name = entry.get("name") or entry.get("rev")
        if data.get("params"):
            row = {"name": name, "rev": entry.get("rev") or data.get("rev"), "base": baseline,
                   "params": flatten((data["params"].get("params.yaml") or {}).get("data") or {}),
                   "metrics": {f: (m or {}).get("data") or {} for f, m in (data.get("metrics") or {}).items()},
                   "deps": {p: (d or {}).get("hash") for p, d in (data.get("deps") or {}).items()}}
            rows.append(row)
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                rev.setdefault("name", exp.get("name"))
                visit(rev, baseline)

    for entry in exp_show:
        if base is None or entry.get("rev") == "workspace" or str(entry.get("rev")).startswith(base):
            visit(entry, entry.get("rev"))
    if wanted:
        def matches(r, w):  # a name, or a rev prefix
            return r["name"] == w or str(r["rev"]).startswith(w)

        def rank(r):  # position of the first request it matches: the order asked for
            return next((i for i, w in enumerate(wanted) if matches(r, w)), None)

        rows += [r for r in stored if r["name"] in wanted and not any(matches(x, r["name"]) for x in rows)]
        rows = sorted((r for r in rows if rank(r) is not None), key=rank)
        missing = [w for w in wanted if not any(matches(r, w) for r in rows)]
        if missing:
            where = f" of commit {base[:7]}" if base else ""
            raise UserError(f"emotion-report: no experiment named {', '.join(missing)}{where} in `dvc exp show`")
    else:
        rows = [r for r in rows if r["name"] not in ("workspace",) and r["rev"] != "workspace"]
    return rows


CODE = ("src/", "stages/")  # the deps that are code: equal hashes, the same stages ran


def code_deps(r: dict) -> dict[str, str]:
    return {p: h for p, h in r.get("deps", {}).items() if p.startswith(CODE)}


def provenance(r: dict) -> dict:
    """What must agree for rows to be compared: the code (every code dep's hash), the data (data.raw_dir's hash),
    the taxonomy (its labels), the CPU kind (or GPU) and the training precision."""
    import hashlib

    code = sorted(code_deps(r).items())
    train = r["metrics"].get(TRAIN_METRICS, {})
    return {"code": hashlib.sha256(json.dumps(code).encode()).hexdigest()[:12] if code else None,
            "data": r.get("deps", {}).get(str(r["params"].get("data.raw_dir"))),
            "taxonomy": taxonomy_of(r), "cpu_kind": train.get("gpu") or train.get("cpu_kind"),
            "precision": train.get("precision")}


def taxonomy_of(r: dict) -> str:
    """A row's taxonomy (data.taxonomy; a run from before the param has the 28 labels)."""
    return r["params"].get("data.taxonomy") or "goemotions"


def check_like_with_like(rows: list[dict], keys=("code", "data", "taxonomy", "cpu_kind", "precision")) -> None:
    """Refuse (one line) to put rows side by side whose code, data, taxonomy, CPU kind or precision differ."""
    seen: dict[str, tuple] = {}
    for r in rows:
        for key, value in provenance(r).items():
            if value is None or key not in keys:
                continue
            if key in seen and seen[key][1] != value:
                other = seen[key]
                raise UserError(f"emotion-report: {other[0]} and {r['name']} differ in {key} ({other[1]} vs {value}): "
                                 "they are not comparable; report them apart (name the experiments), or pass "
                                 "--allow-mixed to compare them anyway")
            seen.setdefault(key, (r["name"], value))


CURVES = ("train_loss", "dev_loss", "dev_tuned_macro_f1", "dev_macro_f1")


def git_reader(rev: str, path: str) -> str | None:
    r = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else None


def attach_artifacts(rows: list[dict], read: Callable[[str, str], str | None]) -> None:
    """Per row: `curves` {metric: [per-epoch values]} from dvclive, `per_label` (DataFrame) from evaluate, and the
    `environment` its train stage recorded (None for a run older than that record)."""
    import pandas as pd

    for r in rows:
        if "curves" in r:  # a stored row: read with its artifacts
            continue
        r["environment"] = run_environment(r["rev"], read)
        r["curves"] = {}
        for k in CURVES:
            tsv = read(r["rev"], f"{LIVE_DIR}/plots/metrics/{k}.tsv")
            if tsv:
                r["curves"][k] = pd.read_csv(io.StringIO(tsv), sep="\t")[k].tolist()
        csv = read(r["rev"], PER_LABEL)
        r["per_label"] = pd.read_csv(io.StringIO(csv)) if csv else None


def run_environment(rev: str, read: Callable[[str, str], str | None]) -> dict | None:
    """The environment an experiment's train stage recorded (training.identity.environment, per model)."""
    text = read(rev, RUN_ENVIRONMENT)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


STORED = ("name", "rev", "base", "params", "metrics", "deps", "curves", "environment")  # and per_label


def write_store(rows: list[dict], path) -> None:
    """The rows a report rendered, with their curves and per-label scores, as JSON kept in git beside the report:
    the experiments' refs and commits may not outlive the machine, and a later comparison reuses the rows whose
    code, params, data and environment (libraries, machine kind, teacher, encoder: each run's own record) still
    match (`emotion-compare-all`)."""
    from ..files import write_json

    new = [{**{k: r.get(k) for k in STORED},
            "per_label": None if r.get("per_label") is None else r["per_label"].to_dict(orient="records")}
           for r in rows]
    # merged by name: a row this report did not render stays (another seed's, another share's); a rendered one
    # replaces its earlier self
    names = {r["name"] for r in new}
    old = [r for r in _read_raw(path) if r.get("name") not in names]
    write_json(path, old + new)


def _read_raw(path) -> list[dict]:
    """The store's rows as JSON holds them; none when the file is absent."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text()) if path.exists() else []
        assert isinstance(rows, list)
    except (ValueError, AssertionError) as e:
        raise UserError(f"{path}: not a store of experiment rows ({e}); delete it to run every experiment") from None
    return rows


def read_store(path) -> list[dict]:
    """`write_store`'s rows, per-label scores as a DataFrame again; none when the file is absent."""
    import pandas as pd

    rows = _read_raw(path)
    try:
        for r in rows:
            r["per_label"] = None if r["per_label"] is None else pd.DataFrame.from_records(r["per_label"])
            r["curves"] = r["curves"] or {}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a store of experiment rows ({e}); delete it to run every experiment") from None
    return rows


FORMERLY = {INFERENCE_METRICS: EVAL_METRICS}  # where older experiments kept these keys


def metric(r: dict, f: str, k: str):
    v = r["metrics"].get(f, {}).get(k)
    return v if v is not None or f not in FORMERLY else r["metrics"].get(FORMERLY[f], {}).get(k)


def differing(params: dict, defaults: dict) -> dict:
    return {k: v for k, v in params.items() if defaults.get(k) != v}


# Params added after some experiments ran, with the value that trains as the code did before them: an older run
# lacks the key, and its command must still rerun it when main's value differs.
INTRODUCED = {"ensemble.members": [], "train.rdrop_alpha": 0.0}


def command(r: dict, defaults: dict) -> str:
    """`dvc exp run -S ...` with the params that differ from the defaults, leaving out the other
    architectures' sub-sections (the train stage does not read them)."""
    from ..architectures import REGISTRY  # model.<architecture>.* are sections; model.mask_words.* is not

    introduced_later = {k: v for k, v in INTRODUCED.items() if k in defaults}  # what an older run trained with
    params = {**introduced_later, **r["params"]}
    name = params.get("model.name")
    other = tuple(f"model.{a}." for a in REGISTRY if a != name)
    diff = {k: v for k, v in differing(params, defaults).items() if not k.startswith(other)}
    if name is not None:  # the model is named even when it is main's: the command says what it trains
        diff["model.name"] = name
    return "dvc exp run" + "".join(f" -S {k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
                                   for k, v in sorted(diff.items()))


def seed_groups(rows: list[dict], defaults: dict) -> dict[str, list[dict]]:
    """Rows that differ only in `seed`, under the command that runs them all (`-S seed=a,b,c`: DVC's grid)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        without_seed = {**r, "params": {k: v for k, v in r["params"].items() if k != "seed"}}
        groups.setdefault(command(without_seed, {k: v for k, v in defaults.items() if k != "seed"}), []).append(r)
    return groups


def best_of_groups(groups: dict[str, list[dict]]) -> list[dict]:
    """Each group's seed with the best dev macro F1 (dev decides, never test)."""
    return [max(rows, key=lambda r: metric(r, EVAL_METRICS, "dev_macro_f1") or -1) for rows in groups.values()]
