"""A run's identity: the run id, one fingerprint of everything that decides a trained model's bytes, and the key of
the frozen-encoder features it trains on. The checkpoint, the model cache and a kept comparison row all ask here,
so none of them can disagree on what counts as the same run."""

from __future__ import annotations

import hashlib
import json

import torch

from .. import codedeps, data, hardware
from ..encoder import ENCODERS, encoder_hash
from ..fields import as_tree
from ..params import ModelSpec, TrainJob
from . import distributed
from .distill import teacher_hash

TRAINING_CODE = "stages.train"  # the module whose imports are what a training run runs
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "numpy")


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def code_version(*starts: str) -> str:
    """A hash of the code that `starts` run (their modules and every module of ours they import, as dvc.yaml lists a
    stage's code deps; the train stage's by default). Not the params modules' text: what they make of params.yaml
    is in the run id by value, so a params edit that changes no setting of a run leaves its run id as it is."""
    found = sorted({f for start in starts or (TRAINING_CODE,) for f in codedeps.files(start, runs_also=False)})
    return fingerprint(*[(f.relative_to(codedeps.PKG).as_posix(), _source(f)) for f in found])


def _source(path) -> str:
    return path.read_text(encoding="utf-8")


def library_versions(encoder: str | None = None) -> dict[str, str | None]:
    """The versions of the libraries whose kernels and defaults shape the weights' bits (and a registered encoder's
    packages, whose files are hashed too)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in [*LIBRARIES, *(ENCODERS[encoder].packages if encoder in ENCODERS else ())]:
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


def environment(job: TrainJob) -> dict:
    """What a run stood on besides params, data and code, as the run records it (metrics/environment.json) and a
    comparison checks a finished run against before keeping it: library versions (the encoder's package too), the
    machine kind, the teacher's and the encoder's file content. Each is also in the run id."""
    device, precision = placement(job)
    hw = machine(device, precision)
    return {"libraries": library_versions(job.model.encoder), "machine": hw["gpu"] or hw["cpu_kind"],
            "teacher": teacher_hash(job.teacher), "encoder": encoder_hash(job.model.encoder)}


def placement(job: TrainJob) -> tuple[torch.device, str]:
    """Where and in which precision this job runs on this machine (`auto` resolved)."""
    device = hardware.resolve_device(job.train.device, "train.device")
    return device, hardware.resolve_precision(job.train.precision, device, "train.precision")


def run_identity(job: TrainJob, splits: dict, labels: list[str]) -> dict:
    """Everything that decides a trained model's bytes, each once: the resolved settings (recipe and `auto` already
    applied: the machine's side is `machine`), the content of the data it trains and selects on, the teacher's
    and the encoder's files (their content, not where they lie), the code, library versions and the machine."""
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
        "machine": machine(*placement(job)),
    }


def run_id(job: TrainJob, splits: dict, labels: list[str]) -> str:
    """The run id: what `fit` names its checkpoint and the model cache its entry, computed before anything is built."""
    return fingerprint(run_identity(job, splits, labels))


def feature_key(spec: ModelSpec, entry, device, precision: str) -> dict:
    """What decides frozen-encoder features besides the token ids: the encoder's files, the settings the
    architecture names (entry.feature_params), the code (the architecture's module and training.features, with what
    they import), libraries and machine."""
    module = entry.build.__module__.removeprefix(f"{codedeps.PKG.name}.")
    return {"encoder": encoder_hash(spec.encoder), "max_length": spec.max_length,
            "mask_words": as_tree(spec.mask_words), **{k: getattr(spec.arch, k) for k in entry.feature_params},
            "code": code_version(module, "training.features"), "libraries": library_versions(spec.encoder),
            "machine": machine(device, precision)}
