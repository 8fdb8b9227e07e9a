"""The one registry of architectures. Each module of this package defines one (or a family) and
registers what it is and can do; the rest of the code asks the entry, never the name.

Add an architecture: a module here with its config (a frozen dataclass) that calls `register(Architecture(...))`,
and its `model.<name>` section in params.yaml. Nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class Architecture:
    name: str
    config: type  # its `model.<name>` section: a frozen dataclass of `fields.param`s, defaults beside the checks
    build: Callable[[object, dict, nn.Module | None], nn.Module]  # (its config, sizes, encoder or None) -> model
    needs_encoder: Callable[[object], bool]  # (its config) -> does training build it from the pretrained encoder?
    recipe: dict = dataclasses.field(default_factory=dict)  # `model.<name>.train` by default: train settings
    # `model.<name>.encoders` by default: per encoder, values for the config's null keys and a `train` recipe
    encoder_recipes: dict = dataclasses.field(default_factory=dict)
    keeps_encoder: bool = False  # the model holds the encoder: its config is saved to rebuild it offline
    head_on_features: bool = False  # only `model.head` trains, on cached `model.features(...)` of a frozen encoder
    feature_params: tuple[str, ...] = ()  # the config fields those cached features depend on
    param_groups: Callable | None = None  # (model, train_params, arch) -> optimizer groups; None: all at train.lr
    before_epoch: Callable | None = None  # (model, arch, epoch): e.g. gradual unfreezing
    check: Callable | None = None  # (arch, world_size): a UserError for settings this run cannot take
    export_blocker: Callable[[dict], str | None] = lambda arch: "only fine-tuned transformers export"
    # (arch) -> why `emotion-export` cannot write it, or None when it can
    output_layer: Callable[[nn.Module], nn.Linear] = lambda model: model.classifier
    # (model) -> the Linear that gives the logits: a loss's known per-label shift is taken out of its bias


REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    REGISTRY[arch.name] = arch
    return arch


def get(name: str) -> Architecture:
    if name not in REGISTRY:
        raise UserError(f"unknown model.name {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def output_layer(arch: Architecture, model: nn.Module, n_labels: int) -> nn.Linear:
    """The Linear giving `model`'s logits, as its entry names it; checked before a training needs it."""
    try:
        layer = arch.output_layer(model)
    except AttributeError:
        layer = None
    if not isinstance(layer, nn.Linear) or layer.out_features != n_labels:
        raise UserError(f"architecture {arch.name}: its entry's output_layer must give the nn.Linear that outputs "
                        f"the {n_labels} logits (train.loss weighted_bce shifts its bias); declare "
                        f"`output_layer=lambda model: model.<that layer>` in its register(...)")
    return layer


for _module in pkgutil.iter_modules(__path__):  # every module here registers itself on import
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
