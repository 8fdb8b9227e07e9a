"""A run's identity and what survives it: the run id (params, data, code, device kind, precision, world size), the
checkpoint a killed run resumes from, and the model cache an ensemble reuses finished members from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from .. import codedeps, distributed, hardware, models
from ..distill import teacher_hash
from ..io import atomic_path
from ..params import resolve


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """Outside the workspace, so queued experiments (each in its own temp copy) share it."""
    return Path(os.environ.get("EMOTION_CLASSIFIER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emotion-classifier"))


def code_version() -> str:
    """A hash of the code a training run runs (the train stage's modules, subpackages included, as dvc.yaml lists
    them): a checkpoint resumes, and a trained model is reused, only under the code that wrote it."""
    return fingerprint(*[(f.relative_to(codedeps.PKG).as_posix(), f.read_text(encoding="utf-8"))
                         for f in codedeps.files(TRAINING_CODE)])


TRAINING_CODE = "stages.train"  # the module whose imports are what a training run runs


def run_id(params: dict, splits: dict, device: torch.device, precision: str) -> str:
    """A checkpoint belongs to exactly these settings (the architecture's section, the train settings, the loss's
    section, how dev picks the epoch), data, code, device kind, precision and world size."""
    from .. import architectures, thresholds
    from . import losses

    name = params["model"]["name"]  # its section only: another architecture's settings do not change this run
    model = {k: v for k, v in params["model"].items() if k not in architectures.REGISTRY or k == name}
    return fingerprint(params["seed"], model, params["train"], losses.settings(params["loss"], params["train"]["loss"]),
                       thresholds.Policy.from_params(params).as_dict(), teacher_hash(params["train"]),
                       [splits[s]["id"].tolist() for s in ("train", "dev")], code_version(), device.type, precision,
                       distributed.world_size())


def planned_run_id(params: dict, splits: dict) -> str:
    """The run id `fit` will give these params on this machine, before anything is built."""
    params = resolve(params)
    device = hardware.resolve_device(params["train"]["device"], "train.device")
    precision = hardware.resolve_precision(params["train"]["precision"], device, "train.precision")
    return run_id(params, splits, device, precision)


def trained_already(run: str, model_dir: str | Path) -> bool:
    """model_dir holds what run id `run` trains (an ensemble member finished before an interruption)."""
    try:
        cfg = models.read_config(model_dir)
    except models.ModelDirError:
        return False
    return cfg.get("train", {}).get("run_id") == run


def model_cache() -> Path:
    """Finished models by run id, outside the workspace: an ensemble's member that an experiment of the same
    architecture, recipe, seed, data, code and machine kind trained already is copied, not trained again."""
    return cache_root() / "models"


def cache_model(model_dir: str | Path, record: dict) -> None:
    """Copy a finished model directory into the model cache (whole or not at all), with its timings."""
    target = model_cache() / record["run_id"]
    if target.exists():
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("members", "thresholds.json", ".gitignore"))
    run_log = {**{k: v for k, v in record.items() if k.endswith(("_s", "_per_s"))}, "history": record["history"]}
    (tmp / TIMING).write_text(json.dumps(run_log) + "\n")
    try:
        tmp.rename(target)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)


TIMING = "run.json"  # in a cache entry only: how long its training took (a reuse counts it), its epochs' records


def cached_timing(run: str) -> dict:
    """The cached run's timings and `history` (per-epoch records), or {} when not cached."""
    path = model_cache() / run / TIMING
    return json.loads(path.read_text()) if path.exists() else {}


def cached_model(run: str) -> Path | None:
    """The model cache's directory of run id `run`, or None."""
    path = model_cache() / run
    return path if (path / "config.json").exists() else None


def save_state(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path: Path, run, state: dict) -> None:
    rngs = distributed.gather(hardware.rng_state(run.device))  # every rank's dropout stream (a collective)
    if distributed.is_writer():
        save_state(path, {"model": run.trainable.state_dict(), "optimizer": run.optimizer.state_dict(),
                           "scheduler": run.scheduler.state_dict(), "rng": rngs, "state": json.dumps(state)})


def resume(path: Path, run) -> dict | None:
    """The loop state after the last finished epoch, with model, optimizer, schedule and RNGs restored;
    None when there is no checkpoint. Rank 0 reads it and hands it to every rank, on any machine."""
    ck = torch.load(path, map_location="cpu", weights_only=True) if distributed.is_writer() and path.exists() else None
    ck = distributed.broadcast(ck)
    if ck is None:
        return None
    run.trainable.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    hardware.set_rng_state(ck["rng"][distributed.rank()])
    state = json.loads(ck["state"])
    if distributed.is_writer():
        print(f"resuming from {path} after epoch {state['epoch']}")
    return state
