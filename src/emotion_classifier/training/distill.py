"""Distillation: a model trained on a teacher's probabilities as well as the labels.

The teacher's probabilities on the training split live in teachers/ (versioned with the project; `make teacher`
writes them cross-fitted, experiments/teach.py). With `train.teacher: F.npz` `train` fits each example towards
(1 - distill_weight) * labels + distill_weight * teacher, so one model may learn what the ensemble knows and serve
at one model's speed.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError


def teacher_hash(path: Path | None) -> str | None:
    """sha256 of train.teacher's file: a run (and its checkpoint) belongs to these exact targets."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.exists() else None


def training_targets(path: Path | None, weight: float, train_split: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """The labels, or with a teacher file (train.teacher: distillation) (1 - weight) * labels + weight * the
    teacher's probabilities: for BCE exactly the weighted sum of the loss on each (weight: train.distill_weight)."""
    if path is None:
        return y
    if not path.exists():
        raise UserError(f"train.teacher: {path} not found; write it with "
                        f"`python -m emotion_classifier.experiments.teach MODEL_DIR {path}` (the teacher's "
                        "probabilities on the training split)")
    try:
        with np.load(path) as f:
            ids, probs = f["ids"], f["probs"].astype(np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a changed byte
        raise UserError(f"{path}: not a teacher file (an .npz with ids and probs), or damaged: "
                        f"{type(e).__name__}: {e}; rebuild it (`make teacher`) or restore it from git") from None
    if probs.shape != y.shape or not np.array_equal(ids.astype(str), train_split["id"].to_numpy().astype(str)):
        raise UserError(f"{path}: the teacher scored other training data ({probs.shape[0]} rows, the training split "
                        f"has {len(y)} in another order or with other ids); rewrite it for this data")
    return ((1 - weight) * y + weight * probs).astype(np.float32)
