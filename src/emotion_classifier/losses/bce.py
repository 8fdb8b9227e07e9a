"""Binary cross-entropy, plain or with each label's positives weighted by its negatives-per-positive."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..fields import number, param
from . import Loss, label_counts, register


@dataclass(frozen=True)
class WeightedBCEConfig:
    pos_weight_cap: float = param(number(1), 10.0)  # a positive weighs negatives-per-positive, at most this


def positive_weights(settings: WeightedBCEConfig, y_train: np.ndarray) -> np.ndarray:
    """A label's weight of a positive: negatives per positive, capped at pos_weight_cap."""
    pos = label_counts(y_train)
    return np.minimum((len(y_train) - pos) / pos, settings.pos_weight_cap).astype(np.float32)


def logit_shift(settings: WeightedBCEConfig, y_train: np.ndarray) -> np.ndarray:
    """Weighted BCE's optimum is sigmoid(z) = w p / (w p + 1 - p), so z = logit(p) + log(w): probabilities run
    high, by up to 10x in odds, which misleads a reader, a global threshold and an ensemble's fitted weights."""
    return np.log(positive_weights(settings, y_train))


register(Loss("bce", build=lambda settings, y_train, device: nn.BCEWithLogitsLoss()))
register(Loss(
    "weighted_bce",
    build=lambda settings, y_train, device: nn.BCEWithLogitsLoss(
        pos_weight=torch.from_numpy(positive_weights(settings, y_train)).to(device)),
    config=WeightedBCEConfig,
    logit_shift=logit_shift,
))
