"""What one architecture trains with: a `TrainJob`, its recipe and every `auto`-free setting resolved from the
params as written (`resolve`), and where each recipe setting came from (`recipe_sources`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..encoder import BUNDLED_ENCODER
from ..fields import ParamsError
from ..paths import TEACHERS_DIR
from ..thresholds import Policy
from .sections import ENSEMBLE, TRAIN_KEYS, MaskWords, ModelParams, Params, TrainParams


@dataclass(frozen=True)
class ModelSpec:
    """The model one run builds: its architecture's name and config, the encoder and the tokenization."""

    name: str
    arch: Any  # the architecture's config (architectures.<module>.<Name>Config)
    encoder: str
    max_length: int
    mask_words: MaskWords


@dataclass(frozen=True)
class TrainJob:
    """What one architecture trains with: its recipe and every explicit setting applied (no null left), its loss's
    settings, and how dev picks the epoch. The whole input of `training.loop.fit` besides data and paths."""

    seed: int
    model: ModelSpec
    train: TrainParams
    loss: Any  # train.loss's settings (its config), None for a loss without any
    policy: Policy
    teacher: Path | None = None  # train.teacher's file (distillation targets), found in the project's teachers/


def resolve(params: Params, teachers_dir: str | Path = TEACHERS_DIR) -> TrainJob:
    """What `model.name` trains with: each `train.K` that params.yaml sets (not null) as it is, so an explicit
    `-S train.K=V` always wins; each null one from the encoder's recipe, `model.<name>.encoders.<encoder>.train.K`,
    else the architecture's, `model.<name>.train.K`. A null key of `model.<name>` takes the encoder's recipe's value.
    A teacher file is looked for in `teachers_dir`."""
    name = params.model.name
    if name == ENSEMBLE:
        raise ParamsError("params: model.name is ensemble, which is no single architecture: each of ensemble.members "
                          "trains with its own recipe (one architecture per member)")
    _, by_encoder = params.model.encoder_recipe(name)
    recipe = {**params.model.recipes[name], **by_encoder["train"]} if by_encoder else params.model.recipes[name]
    filled = {k: recipe.get(k) for k in TRAIN_KEYS if getattr(params.train, k) is None}
    for key, value in filled.items():
        if value is None:
            raise ParamsError(f"params: 'train.{key}' is null (the architecture's recipe decides) and "
                              f"'model.{name}.train' sets no {key}: set one of them")
    train = dataclasses.replace(params.train, **filled)
    loss = params.loss.get(train.loss)
    spec = ModelSpec(name, _filled_arch(params.model, name), params.model.encoder, params.model.max_length,
                     params.model.mask_words)
    teacher = Path(teachers_dir) / train.teacher if train.teacher else None
    return TrainJob(params.seed, spec, train, loss, params.policy, teacher)


def _filled_arch(model: ModelParams, name: str):
    """`model.<name>` with its null keys from the encoder's recipe."""
    arch, (_, by_encoder) = model.archs[name], model.encoder_recipe(name)
    empty = [f.name for f in dataclasses.fields(arch) if getattr(arch, f.name) is None]
    for key in empty:
        if key not in by_encoder:
            raise ParamsError(f"params: 'model.{name}.{key}' is null (the encoder's recipe decides) and "
                              f"'model.{name}.encoders' has no entry for {model.encoder} (nor for {BUNDLED_ENCODER}) "
                              f"setting {key}: set one of them")
    return dataclasses.replace(arch, **{k: by_encoder[k] for k in empty})


def recipe_sources(params: Params) -> dict[str, str]:
    """Where each recipe setting comes from in these params: 'recipe' (the architecture's), '<encoder> recipe'
    or 'train.K' (an explicit value, which won). Keys of `train` and the section's keys the encoder's recipe fills."""
    name = params.model.name
    encoder, by_encoder = params.model.encoder_recipe(name)
    encoder_train = by_encoder.get("train", {})

    def source(key: str) -> str:
        if getattr(params.train, key) is not None:
            return f"train.{key}"
        return f"{encoder} recipe" if key in encoder_train else "recipe"

    train_keys = dict.fromkeys([*params.model.recipes[name], *encoder_train])  # in order, each once
    arch = params.model.archs[name]
    filled = {k: f"{encoder} recipe" for k in by_encoder if k != "train" and getattr(arch, k) is None}
    return {**{k: source(k) for k in train_keys}, **filled}
