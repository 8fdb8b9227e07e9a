"""params.yaml's sections as typed, frozen dataclasses, and the `model:` and `loss:` sections composed from the
architecture and loss registries (field types in `fields`, each architecture's and loss's section beside its code)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..encoder import BUNDLED_ENCODER
from ..fields import (
    DEVICE,
    PRECISION,
    Field,
    ParamsError,
    build_section,
    choice,
    integer,
    number,
    param,
    section,
)
from ..taxonomy import GOEMOTIONS, TAXONOMIES
from ..thresholds import STRATEGIES, Policy

MONITORS = ("dev_tuned_macro_f1", "dev_tuned_micro_f1", "dev_macro_f1", "dev_micro_f1", "dev_loss")
ENSEMBLE = "ensemble"  # the model.name that trains ensemble.members, each with its own recipe


@dataclass(frozen=True)
class DataParams:
    raw_dir: str = param(Field(str), "data/raw/goemotions")
    prepared_dir: str = param(Field(str), "data/prepared")
    max_examples: int = param(integer(0), 0)  # per split; 0 = all (a seeded subset otherwise, for quick runs)
    taxonomy: str = param(choice(*TAXONOMIES), GOEMOTIONS)  # the 28 labels | ekman (6 + neutral) | sentiment (3 + 1)


@dataclass(frozen=True)
class PrepareParams:
    subset_seed: int = param(integer(0), 0)
    # minority-label augmentation of train (emotion_classifier.augment): each label with fewer examples gets
    # label-union concatenations up to this many; 0 = off
    augment_to: int = param(integer(0), 0)
    augment_seed: int = param(integer(0), 0)


@dataclass(frozen=True)
class AnalyzeParams:
    max_length: int = param(integer(8, 4096), 512)  # token lengths are measured untruncated up to this


@dataclass(frozen=True)
class MaskWords:
    """A word whose embedding each mask token starts from ('' = the mean embedding); encoder.MASK_TOKENS' names."""

    NAME: str = param(Field(str), "")
    RELIGION: str = param(Field(str), "")


@dataclass(frozen=True)
class TrainParams:
    """`train:` as written: a null (None) is "the architecture's recipe decides" (`resolve` fills it)."""

    epochs: int | None = param(integer(1), None, nullable=True)
    batch_size: int | None = param(integer(1), 32, nullable=True)
    lr: float | None = param(number(0, 10, lo_open=True), 1.0e-3, nullable=True)
    weight_decay: float | None = param(number(0, 1), 0.01, nullable=True)
    optimizer: str | None = param(choice("adam", "adamw", "sgd"), "adamw", nullable=True)
    scheduler: str | None = param(choice("none", "linear", "cosine"), "linear", nullable=True)
    warmup_ratio: float | None = param(number(0, 1), 0.1, nullable=True)
    grad_clip: float | None = param(number(0), 1.0, nullable=True)
    loss: str | None = param(Field(str), None, nullable=True)  # a registered loss (checked in `from_tree`)
    teacher: str | None = param(Field(str, pattern=r"([\w.-]+\.npz)?",
                                      pattern_text="a .npz file name in teachers/, or \"\""), "", nullable=True)
    distill_weight: float | None = param(number(0, 1), 0.5, nullable=True)
    rdrop_alpha: float | None = param(number(0, 100), 0.0, nullable=True)
    precision: str | None = param(PRECISION, "auto", nullable=True)
    device: str | None = param(DEVICE, "auto", nullable=True)
    processes: int | None = param(integer(1, 1024), 1, nullable=True)
    monitor: str | None = param(choice(*MONITORS), "dev_tuned_macro_f1", nullable=True)
    patience: int | None = param(integer(0), 2, nullable=True)
    bucket_chunk: int | None = param(integer(1), 50, nullable=True)


TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainParams))


def arch_registry():
    from ..architectures import REGISTRY  # imports torch: only when params are built

    return REGISTRY


def loss_registry():
    from ..losses import REGISTRY

    return REGISTRY


def _default_archs() -> Mapping[str, Any]:
    return MappingProxyType({name: entry.config() for name, entry in arch_registry().items()})


def _default_recipes() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: MappingProxyType(dict(entry.recipe)) for name, entry in arch_registry().items()})


def _default_encoder_recipes() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: check_encoder_recipes(entry.encoder_recipes, entry.config, f"model.{name}.encoders")
                             for name, entry in arch_registry().items()})


@dataclass(frozen=True)
class ModelParams:
    """`model:`: the architecture to train, the encoder, and every architecture's section (its config `archs[name]`,
    its recipe `recipes[name]`, written `model.<name>.train`, and its recipe with each encoder
    `encoder_recipes[name][encoder]`, written `model.<name>.encoders.<encoder>`)."""

    name: str = param(Field(str), ENSEMBLE)  # checked against the registry on building
    encoder: str = param(Field(str), BUNDLED_ENCODER)  # a registered one (encoder.ENCODERS); or a local model dir
    max_length: int = param(integer(8, 4096), 64)
    mask_words: MaskWords = section(MaskWords)
    archs: Mapping[str, Any] = field(default_factory=_default_archs)
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=_default_recipes)
    encoder_recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=_default_encoder_recipes)

    @property
    def arch(self):
        return self.archs[self.name]

    def encoder_recipe(self, name: str) -> tuple[str, Mapping[str, Any]]:
        """Architecture `name`'s recipe for this model's encoder (the section keys it fills, and `train`) and whose
        entry it is: the encoder's own, else (a local folder, say) the bundled encoder's, else none."""
        recipes = self.encoder_recipes[name]
        for encoder in (self.encoder, BUNDLED_ENCODER):
            if encoder in recipes:
                return encoder, recipes[encoder]
        return self.encoder, MappingProxyType({})


def _build_model(raw: Any, prefix: str) -> ModelParams:
    if not isinstance(raw, dict):
        raise ParamsError(f"params: '{prefix}' must be a mapping, got {type(raw).__name__}")
    registry, archs, recipes, encoder_recipes = arch_registry(), {}, {}, {}
    own = [f.name for f in dataclasses.fields(ModelParams) if "check" in f.metadata or "section" in f.metadata]
    for key in raw:
        if key not in (*own, *registry):
            raise ParamsError(f"params: unknown key '{prefix}.{key}'; allowed keys here: "
                              f"{', '.join([*own, *registry])}")
    base = build_section(ModelParams, {k: raw[k] for k in own if k in raw}, prefix)
    choice(*registry, ENSEMBLE).check(f"{prefix}.name", base.name)
    for name, entry in registry.items():
        given = raw.get(name) or {}
        if not isinstance(given, dict):
            raise ParamsError(f"params: '{prefix}.{name}' must be a mapping, got {type(given).__name__}")
        given = dict(given)
        recipe = given.pop("train", entry.recipe)
        by_encoder = given.pop("encoders", entry.encoder_recipes)
        archs[name] = build_section(entry.config, given, f"{prefix}.{name}")
        recipes[name] = MappingProxyType(check_recipe(recipe, f"{prefix}.{name}.train"))
        encoder_recipes[name] = check_encoder_recipes(by_encoder, entry.config, f"{prefix}.{name}.encoders")
    return dataclasses.replace(base, archs=MappingProxyType(archs), recipes=MappingProxyType(recipes),
                               encoder_recipes=MappingProxyType(encoder_recipes))


def check_recipe(recipe: Any, key: str) -> dict:
    """An architecture's best training settings: any keys of `train:`, each checked as there, none null."""
    if recipe is None:
        return {}
    if not isinstance(recipe, dict):
        raise ParamsError(f"params: '{key}' is {recipe!r}; expected a mapping of train settings, "
                          "e.g. {epochs: 5, loss: bce}")
    checks = {f.name: f.metadata["check"] for f in dataclasses.fields(TrainParams)}
    out = {}
    for k, v in recipe.items():
        if k not in checks:
            raise ParamsError(f"params: '{key}.{k}' is not a train setting; allowed keys: {', '.join(checks)}")
        if v is None:
            raise ParamsError(f"params: '{key}.{k}' is null; a recipe gives a value or leaves the key out")
        out[k] = checks[k].check(f"{key}.{k}", v)
    if "loss" in out:
        choice(*loss_registry()).check(f"{key}.loss", out["loss"])
    return out


def check_encoder_recipes(raw: Any, config: type, key: str) -> Mapping[str, Any]:
    """`model.<name>.encoders`: for each encoder, values for the section's keys left empty (null) and a `train:`
    recipe that wins over `model.<name>.train`; what the architecture's runs chose on dev with that encoder."""
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise ParamsError(f"params: '{key}' is {raw!r}; expected a mapping of encoder to its recipe, "
                          "e.g. {all-mpnet-base-v2: {encoder_lr: 5.0e-5, train: {epochs: 3}}}")
    fillable = {f.name: f.metadata["check"] for f in dataclasses.fields(config) if f.metadata.get("nullable")}
    out = {}
    for encoder, block in raw.items():
        where = f"{key}.{encoder}"
        if not isinstance(block, dict):
            raise ParamsError(f"params: '{where}' is {block!r}; expected a mapping such as {{train: {{epochs: 3}}}}")
        block = dict(block)
        checked = {"train": MappingProxyType(check_recipe(block.pop("train", None), f"{where}.train"))}
        for k, v in block.items():
            if k not in fillable:
                raise ParamsError(f"params: '{where}.{k}' is not a key an encoder's recipe sets; allowed keys: "
                                  f"{', '.join([*fillable, 'train'])}")
            if v is None:
                raise ParamsError(f"params: '{where}.{k}' is null; a recipe gives a value or leaves the key out")
            checked[k] = fillable[k].check(f"{where}.{k}", v)
        out[str(encoder)] = MappingProxyType(checked)
    return MappingProxyType(out)


def _build_losses(raw: Any, prefix: str) -> Mapping[str, Any]:
    configs = {name: loss.config for name, loss in loss_registry().items() if loss.config is not None}
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamsError(f"params: '{prefix}' must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in configs:
            raise ParamsError(f"params: unknown key '{prefix}.{key}'; allowed keys here: {', '.join(configs)}")
    return MappingProxyType({name: build_section(cls, raw.get(name), f"{prefix}.{name}")
                             for name, cls in configs.items()})


def _default_losses() -> Mapping[str, Any]:
    return _build_losses({}, "loss")


@dataclass(frozen=True)
class TuneThresholdsParams:
    # also tune thresholds on the onnxruntime int8 model's dev scores (--backend onnx --quantize)
    onnx_int8: bool = param(Field(bool), True)


@dataclass(frozen=True)
class ThresholdsParams:
    metric: str = param(choice("micro_f1", "macro_f1"), "micro_f1")  # what the global threshold maximises on dev
    min_positives: int = param(integer(0), 5)  # per-label tuning needs this many dev positives, else the global one


@dataclass(frozen=True)
class EvaluateParams:
    thresholds: str = param(choice(*STRATEGIES), "per_label")
    precision: str = param(PRECISION, "fp32")  # fp32 gives the same scores on every machine
    device: str = param(DEVICE, "auto")
    bootstrap_resamples: int = param(integer(100, 100_000), 1000)  # test resamples for the confidence intervals
    bootstrap_seed: int = param(integer(0), 0)  # fixed apart from `seed`: every experiment resampled the same way
    ci_level: float = param(number(0.5, 0.999), 0.95)


@dataclass(frozen=True)
class EnsembleParams:
    # each a mapping of overrides, as `dvc exp run -S` takes them (see member_params); which architectures main
    # combines is params.yaml's choice alone: no default
    members: tuple = param(Field(list), ())


@dataclass(frozen=True)
class CompareParams:
    """The TF-IDF + one-vs-rest logistic regression baseline."""

    tfidf_max_features: int = param(integer(100), 50000)
    tfidf_ngram_max: int = param(integer(1, 3), 2)
    C: float = param(number(0, lo_open=True), 4.0)


@dataclass(frozen=True)
class Params:
    seed: int = param(integer(0), 0)
    data: DataParams = section(DataParams)
    prepare: PrepareParams = section(PrepareParams)
    analyze_dataset: AnalyzeParams = section(AnalyzeParams)
    model: ModelParams = field(default_factory=ModelParams, metadata={"build": _build_model})
    train: TrainParams = section(TrainParams)
    loss: Mapping[str, Any] = field(default_factory=_default_losses, metadata={"build": _build_losses})
    tune_thresholds: TuneThresholdsParams = section(TuneThresholdsParams)
    thresholds: ThresholdsParams = section(ThresholdsParams)
    evaluate: EvaluateParams = section(EvaluateParams)
    compare: CompareParams = section(CompareParams)
    ensemble: EnsembleParams = section(EnsembleParams)

    @property
    def policy(self) -> Policy:
        """How thresholds are tuned on dev and which are applied: what the stages and the epoch picker share."""
        return Policy(self.thresholds.metric, self.thresholds.min_positives, self.evaluate.thresholds)
