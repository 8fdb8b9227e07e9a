"""A run's identity and what survives it: the run id (a fingerprint of everything that decides a model's bytes),
the checkpoint a killed run resumes from, and the model cache an ensemble reuses finished members from. Whatever
is reused (a kept member, a cache entry, a checkpoint) is checked against its manifest first."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from .. import cache, codedeps, data, hardware
from ..encoder import ENCODERS, encoder_hash
from ..fields import as_tree
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
    write_manifest,
)
from ..model_dir.model import read_config
from ..params import TrainJob
from . import distributed
from .distill import teacher_hash


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_version(*starts: str) -> str:
    """A hash of the code that `starts` run (their modules and every module of ours they import, as dvc.yaml lists a
    stage's code deps; the train stage's by default). Not params.py, though train depends on it: what its resolution
    makes of params.yaml is in the run id by value (run_identity), so a params edit that changes no setting of a run
    (a new section, a message) leaves its run id and its cached model as they are."""
    found = sorted({f for start in starts or (TRAINING_CODE,) for f in codedeps.files(start, runs_also=False)})
    return fingerprint(*[(f.relative_to(codedeps.PKG).as_posix(), _source(f)) for f in found])


TRAINING_CODE = "stages.train"  # the module whose imports are what a training run runs
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "numpy")


def library_versions(encoder: str | None = None) -> dict[str, str]:
    """The versions of the libraries whose kernels and defaults shape the weights' bits (and a registered encoder's
    packages, whose files are hashed too)."""
    from importlib.metadata import PackageNotFoundError, version

    names = [*LIBRARIES, *(ENCODERS[encoder].packages if encoder in ENCODERS else ())]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine(device: torch.device, precision: str) -> dict:
    """The hardware side of a run: device kind, CPU kind (or GPU), precision as resolved, threads, processes."""
    hw = hardware.describe(device, precision)
    return {"device": device.type, "cpu_kind": hw["cpu_kind"], "gpu": hw.get("gpu"), "precision": precision,
            "threads": distributed.threads_per_process(), "world_size": distributed.world_size()}


def run_identity(job: TrainJob, splits: dict, labels: list[str], device: torch.device, precision: str) -> dict:
    """Everything that decides a trained model's bytes, each once: the resolved settings (recipe and `auto` already
    applied: the machine's side is `machine`), the content of the data it trains and selects on, the encoder's
    files (its content, not where it lies), the code, library versions and the machine."""
    machine_keys = ("precision", "device", "processes")
    return {
        "seed": job.seed,
        "model": {"name": job.model.name, "max_length": job.model.max_length,
                  "mask_words": as_tree(job.model.mask_words)},
        "arch": as_tree(job.model.arch),
        "train": {k: v for k, v in as_tree(job.train).items() if k not in machine_keys},
        "loss": as_tree(job.loss) or {},
        "selection": job.policy.as_dict(),
        "teacher": teacher_hash(job.teacher),
        "data": data.content_hash(splits, labels),
        "encoder": encoder_hash(job.model.encoder),
        "code": code_version(),
        "libraries": library_versions(job.model.encoder),
        "machine": machine(device, precision),
    }


def run_id(job: TrainJob, splits: dict, labels: list[str], device: torch.device, precision: str) -> str:
    return fingerprint(run_identity(job, splits, labels, device, precision))


def planned_run_id(job: TrainJob, splits: dict, labels: list[str]) -> str:
    """The run id `fit` will give this job on this machine, before anything is built."""
    device = hardware.resolve_device(job.train.device, "train.device")
    precision = hardware.resolve_precision(job.train.precision, device, "train.precision")
    return run_id(job, splits, labels, device, precision)


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


def cache_model(model_dir: str | Path, record: dict) -> None:
    """Copy a finished model directory into the model cache (whole or not at all), with its timings."""
    target = model_cache() / record["run_id"]
    if target.exists() or manifest_problem(model_dir):
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns(MEMBERS, THRESHOLDS, ".*"))
    run_log = {**{k: v for k, v in record.items() if k.endswith(("_s", "_per_s"))}, "history": record["history"]}
    (tmp / TIMING).write_text(json.dumps(run_log) + "\n")
    try:
        tmp.rename(target)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    cache.after_write(target)


TIMING = cache.TIMING


def cached_timing(run: str) -> dict:
    """The cached run's timings and `history` (per-epoch records), or {} when not cached."""
    path = model_cache() / run / TIMING
    return json.loads(path.read_text()) if path.exists() else {}


def cached_model(run: str) -> Path | None:
    """The model cache's directory of run id `run`, verified against its manifest (a damaged entry is removed,
    with a line saying why), or None."""
    path = model_cache() / run
    if not (path / CONFIG).exists():
        return None
    problem = manifest_problem(path)
    if problem:
        print(f"model cache entry {path} is damaged ({problem}): removed, the model is rebuilt")
        shutil.rmtree(path, ignore_errors=True)
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


def save_state(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


CHECKPOINT_FILES = ("last.pt", "best.pt")


def save_checkpoint(path: Path, run, state: dict) -> None:
    rngs = distributed.gather(hardware.rng_state(run.device))  # every rank's dropout stream (a collective)
    if distributed.is_writer():
        save_state(path, {"model": run.trainable.state_dict(), "optimizer": run.optimizer.state_dict(),
                           "scheduler": run.scheduler.state_dict(), "rng": rngs, "state": json.dumps(state)})
        write_manifest(path.parent, [n for n in CHECKPOINT_FILES if (path.parent / n).exists()])


def resume(path: Path, run) -> dict | None:
    """The loop state after the last finished epoch, with model, optimizer, schedule and RNGs restored;
    None when there is no checkpoint. Rank 0 reads it and hands it to every rank, on any machine."""
    ck = None
    if distributed.is_writer() and path.exists():
        problem = manifest_problem(path.parent)
        if problem:
            print(f"{path.parent}: checkpoint not resumed ({problem}); training from the start")
            shutil.rmtree(path.parent, ignore_errors=True)
        else:
            ck = torch.load(path, map_location="cpu", weights_only=True)
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
