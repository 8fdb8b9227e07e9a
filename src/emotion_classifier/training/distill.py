"""Distillation: a model trained on a teacher's probabilities as well as the labels.

The teacher (typically the ensemble in `models/`) scores the training split once
(`python -m emotion_classifier.experiments.teach models teachers/ensemble.npz`). With `train.teacher: ensemble.npz`
`train` fits each example towards (1 - distill_weight) * labels + distill_weight * teacher, so one model
may learn what the ensemble knows and serve at one model's speed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import atomic_path


def teacher_hash(path: Path | None) -> str | None:
    """sha256 of train.teacher's file: a run (and its checkpoint) belongs to these exact targets."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.exists() else None


def save_teacher(path: str | Path, train_split: pd.DataFrame, probs: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, ids=train_split["id"].to_numpy().astype(str), probs=probs.astype(np.float16))


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
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: not a teacher file (an .npz with ids and probs): {e}") from None
    if probs.shape != y.shape or not np.array_equal(ids.astype(str), train_split["id"].to_numpy().astype(str)):
        raise UserError(f"{path}: the teacher scored other training data ({probs.shape[0]} rows, the training split "
                        f"has {len(y)} in another order or with other ids); rewrite it for this data")
    return ((1 - weight) * y + weight * probs).astype(np.float32)
