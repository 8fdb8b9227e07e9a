"""Data-parallel training with torch.distributed (DDP), launched by torchrun: NCCL on GPUs, gloo on CPU.

The only module that knows about ranks. The loop asks it: which device is mine, which share of this
batch is mine, am I the writer, and what did rank 0 decide. `train.batch_size` is the global batch:
every rank cuts the same length-bucketed batches (same seed) and takes every world_size-th example of
each, so the optimizer steps, the learning-rate schedule and the effective batch do not depend on
the number of processes.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from .. import hardware
from ..errors import UserError

# A collective that waits longer than this (a peer hung or died without torchrun noticing) fails the run.
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("EMOTION_DDP_TIMEOUT_S", "1800")))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_writer() -> bool:
    """Only rank 0 writes models/, metrics, DVCLive and checkpoints."""
    return rank() == 0


def launched() -> bool:
    return "WORLD_SIZE" in os.environ  # set by torchrun (and by any torch.distributed launcher)


def relaunch(processes: int, stage: str, params_yaml: str, cwd: str | Path = ".") -> int:
    """Run `stage` with these params (params.yaml's text) as `processes` processes on this machine (torchrun
    --standalone) in folder `cwd`; the exit code is the failed rank's: torchrun stops the others as soon as one dies."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="params-ddp-", delete=False) as f:
        f.write(params_yaml)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "emotion_classifier.cli", stage, "--params", f.name]
    print(f"train.processes = {processes}: torchrun --standalone --nproc-per-node={processes} ...", flush=True)
    try:
        # the ranks import this very copy of the package (a DVC temp copy's, not the pip-installed one)
        src = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
        code = subprocess.run(cmd, check=False, env=env, cwd=cwd).returncode
    finally:
        os.remove(f.name)
    if code != 0:
        print(f"error: data-parallel training failed (exit code {code}); the failing rank's error is above",
              file=sys.stderr)
    return code


def setup(device_spec: str) -> torch.device:
    """Join the process group (nothing for one process) and return this rank's device."""
    device = hardware.resolve_device(device_spec, "train.device")
    if world_size() == 1:
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"{os.environ.get('LOCAL_WORLD_SIZE')} processes on this machine but only "
                            f"{torch.cuda.device_count()} GPU(s): one process per GPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def threads_per_process() -> int:
    """The user's thread setting, else the cores of this machine shared among the processes on it."""
    return hardware.threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def my_share(idx):
    """This rank's examples of a global batch, and the weight that makes the DDP gradient average equal
    the gradient of the whole batch's mean loss. A rank left with no example reuses one at weight 0."""
    n = world_size()
    mine = idx[rank()::n]
    if len(mine) == 0:
        return idx[:1], 0.0
    return mine, n * len(mine) / len(idx)


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def broadcast(obj):
    """Rank 0's `obj` on every rank (early-stopping state, features, a checkpoint)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def close() -> None:
    if active():
        dist.destroy_process_group()
