"""What survives a killed run: the checkpoint after each finished epoch (model, optimizer, schedule, every rank's
RNGs), under the run's id (training.identity), and resuming from it on any machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .. import hardware
from ..files import atomic_path
from ..model_dir import manifest_problem, write_manifest
from . import distributed

CHECKPOINT_FILES = ("last.pt", "best.pt")


def save_state(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
