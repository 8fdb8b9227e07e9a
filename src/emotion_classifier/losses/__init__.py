"""The registry of training losses, like the architectures': each module here registers one (or a family) with
its `loss.<name>` params section and, where the loss biases the model's logits, the shift that the saved model
has taken out.

Add a loss: a module here (with its settings' frozen dataclass, if it has any) that calls `register(Loss(...))`,
and its `loss.<name>` section in params.yaml (when it has settings). Nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class Loss:
    name: str
    build: Callable  # (settings, y_train, device) -> loss_fn(logits, targets), a mean over examples and labels
    config: type | None = None  # its `loss.<name>` section (a frozen dataclass of `fields.param`s); None: no settings
    logit_shift: Callable | None = None
    # (settings, y_train) -> what the loss adds to each label's calibrated logit: the saved model has it taken out


REGISTRY: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    REGISTRY[loss.name] = loss
    return loss


def get(name: str) -> Loss:
    if name not in REGISTRY:
        raise UserError(f"unknown train.loss {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def label_counts(y_train: np.ndarray) -> np.ndarray:
    return np.maximum(y_train.sum(0), 1)  # a label without positives counts one, so nothing divides by zero


for _module in pkgutil.iter_modules(__path__):  # every module here registers itself on import
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
