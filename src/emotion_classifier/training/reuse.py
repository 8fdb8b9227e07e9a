"""Reuse of finished models by run id (training.identity): a model already in its output directory is kept, one
in the model cache is copied, and a finished run is copied into the cache. Whatever is reused is checked against
its manifest first; the cache is a convenience, so its faults are warnings and never cost the stage's output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import cache
from ..files import atomic_dir, atomic_path
from ..model_dir import (
    CONFIG,
    MANIFEST,
    MEMBERS,
    THRESHOLDS,
    TOKENIZER,
    WEIGHTS,
    ModelDirError,
    manifest_problem,
)
from ..model_dir.model import read_config

TIMING = cache.TIMING


def reuse_problem(model_dir: str | Path, run: str) -> str | None:
    """None when model_dir holds run id `run`'s model, whole (its manifest agrees); else why it cannot be kept."""
    try:
        cfg = read_config(model_dir)
    except ModelDirError:
        return "no model"
    found = cfg.get("train", {}).get("run_id")
    if found != run:
        return f"another run's model (run id {found}, this run is {run})"
    problem = manifest_problem(model_dir)
    return f"damaged: {problem}" if problem else None


def model_cache() -> Path:
    """Finished models by run id, outside the workspace: an ensemble's member that an experiment of the same
    settings, data, encoder, code, libraries and machine kind trained already is copied, not trained again."""
    return cache.models_dir()


def entry_problem(path: Path) -> str | None:
    """None when a cache entry is whole: its model agrees with its manifest and its timings file reads."""
    if not (path / CONFIG).exists():
        return f"no {CONFIG}"
    if problem := manifest_problem(path):
        return problem
    try:
        json.loads((path / TIMING).read_text()) if (path / TIMING).exists() else None
    except (OSError, ValueError) as e:
        return f"{TIMING} unreadable ({e})"
    return None


def cache_model(model_dir: str | Path, record: dict) -> None:
    """Copy a finished model directory into the model cache (whole or not at all), with its timings; a broken entry
    of the same run id is replaced. A failure (disk full, a read-only cache) is one warning: the model in
    `model_dir` is the run's result either way."""
    target = model_cache() / record["run_id"]
    if manifest_problem(model_dir) or (target.exists() and entry_problem(target) is None):
        return
    tmp = target.with_name(cache.tmp_name(target.name))
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns(MEMBERS, THRESHOLDS, ".*"))
        run_log = {**{k: v for k, v in record.items() if k.endswith(("_s", "_per_s"))}, "history": record["history"]}
        (tmp / TIMING).write_text(json.dumps(run_log) + "\n")
        if target.exists():  # broken (checked above): moved aside, then replaced
            aside = target.with_name(cache.tmp_name(target.name, "broken"))
            target.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        tmp.rename(target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target.exists() and entry_problem(target) is None):  # else another process cached it first
            print(f"warning: model cache: {target} not written ({e}); {model_dir}/ holds the model all the same")
        return
    cache.after_write(target)


def cached_timing(run: str) -> dict:
    """The cached run's timings and `history` (per-epoch records), or {} when not cached or unreadable: unknown."""
    path = model_cache() / run / TIMING
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        print(f"model cache: {path} unreadable ({e}); the run's timings are unknown")
        return {}


def cached_model(run: str) -> Path | None:
    """The model cache's directory of run id `run`, verified (a damaged entry is left for the next good copy to
    replace, with a line saying why), or None."""
    path = model_cache() / run
    if not path.exists():
        return None
    if problem := entry_problem(path):
        print(f"model cache entry {path} is damaged ({problem}): not used; this run's model replaces it")
        return None
    cache.touch(path)
    return path


def copy_model(source: str | Path, out: str | Path) -> None:
    """A verified model directory's files into `out` (which may hold other outputs: members/, thresholds.json), each
    replaced atomically, the manifest last; checked again once there."""
    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # until the copy is whole, `out` is not a finished model
    with atomic_dir(out / TOKENIZER) as tmp:
        shutil.copytree(source / TOKENIZER, tmp, dirs_exist_ok=True)
    for name in (WEIGHTS, CONFIG, MANIFEST):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(source / name, tmp)
    problem = manifest_problem(out)
    if problem:
        raise ModelDirError(f"{out}: the copy from {source} is not whole ({problem})")
