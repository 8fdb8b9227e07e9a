"""params.yaml as typed, frozen sections, validated once by `load_params`; the schema composed above the registries
(field types in `fields`, each architecture's and loss's section beside its code).

An unknown key, a wrong type or an out-of-range value fails here, naming the key and what is allowed, before any
work starts. Stages read their sections; what one architecture trains with, its recipe and `auto` resolved, is a
`TrainJob` (see `resolve` and `member_params`), which is all the training library takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .encoder import BUNDLED_ENCODER
from .fields import (
    DEVICE,
    PRECISION,
    Field,
    ParamsError,
    as_tree,
    build_section,
    choice,
    integer,
    number,
    param,
    section,
)
from .paths import TEACHERS_DIR
from .thresholds import STRATEGIES, Policy

MONITORS = ("dev_tuned_macro_f1", "dev_tuned_micro_f1", "dev_macro_f1", "dev_micro_f1", "dev_loss")
ENSEMBLE = "ensemble"  # the model.name that trains ensemble.members, each with its own recipe


@dataclass(frozen=True)
class DataParams:
    raw_dir: str = param(Field(str), "data/raw/goemotions")
    prepared_dir: str = param(Field(str), "data/prepared")
    max_examples: int = param(integer(0), 0)  # per split; 0 = all (a seeded subset otherwise, for quick runs)


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


def _registry():
    from .architectures import REGISTRY  # imports torch: only when params are built

    return REGISTRY


def _losses():
    from .training.losses import REGISTRY

    return REGISTRY


def _default_archs() -> Mapping[str, Any]:
    return MappingProxyType({name: entry.config() for name, entry in _registry().items()})


def _default_recipes() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: MappingProxyType(dict(entry.recipe)) for name, entry in _registry().items()})


def _default_encoder_recipes() -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: _check_encoder_recipes(entry.encoder_recipes, entry.config, f"model.{name}.encoders")
                             for name, entry in _registry().items()})


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
    registry, archs, recipes, encoder_recipes = _registry(), {}, {}, {}
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
        recipes[name] = MappingProxyType(_check_recipe(recipe, f"{prefix}.{name}.train"))
        encoder_recipes[name] = _check_encoder_recipes(by_encoder, entry.config, f"{prefix}.{name}.encoders")
    return dataclasses.replace(base, archs=MappingProxyType(archs), recipes=MappingProxyType(recipes),
                               encoder_recipes=MappingProxyType(encoder_recipes))


def _check_recipe(recipe: Any, key: str) -> dict:
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
        choice(*_losses()).check(f"{key}.loss", out["loss"])
    return out


def _check_encoder_recipes(raw: Any, config: type, key: str) -> Mapping[str, Any]:
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
        checked = {"train": MappingProxyType(_check_recipe(block.pop("train", None), f"{where}.train"))}
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
    configs = {name: loss.config for name, loss in _losses().items() if loss.config is not None}
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


# ---------------------------------------------------------------- building, resolving, writing back


def from_tree(raw: Any) -> Params:
    """The checked params, as written: `train:` may hold nulls (resolve fills them for a run)."""
    params = build_section(Params, raw, "")
    if params.train.loss is not None:
        choice(*_losses()).check("train.loss", params.train.loss)
    members = params.ensemble.members
    if params.model.name == ENSEMBLE:
        if not members:
            raise ParamsError("params: model.name is ensemble but ensemble.members is empty; list its architectures, "
                              "e.g. [{model.name: transformer_finetune}, {model.name: bilstm_lasttoken}]")
    else:
        resolve(params)  # a null train setting that no recipe fills fails now
    for index in range(len(members)):
        member_params(params, index)
    return params


def to_tree(params: Params) -> dict:
    """The params as params.yaml writes them (every key): for `dvc exp run`-like overrides and child processes."""
    tree = {f.name: as_tree(getattr(params, f.name)) for f in dataclasses.fields(Params)
            if f.name not in ("model", "loss")}
    model = params.model
    tree["model"] = {"name": model.name, "encoder": model.encoder, "max_length": model.max_length,
                     "mask_words": as_tree(model.mask_words),
                     **{name: {**as_tree(config), "train": dict(model.recipes[name]),
                              **_encoders_tree(model.encoder_recipes[name])}
                        for name, config in model.archs.items()}}
    tree["loss"] = {name: as_tree(config) for name, config in params.loss.items()}
    tree["ensemble"] = {"members": [dict(m) for m in params.ensemble.members]}
    return tree


def _encoders_tree(recipes: Mapping[str, Mapping[str, Any]]) -> dict:
    """`encoders:` as params.yaml writes it: none for an architecture without, `train:` only where it sets something."""
    trees = {encoder: {**{k: v for k, v in block.items() if k != "train"},
                       **({"train": dict(block["train"])} if block["train"] else {})}
             for encoder, block in recipes.items()}
    return {"encoders": trees} if trees else {}


def dump(params: Params) -> str:
    """The params as a params.yaml file's text."""
    return yaml.safe_dump(to_tree(params), sort_keys=False)


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


MEMBER_KEYS = ("seed", "model.", "train.", "loss.")  # what may differ between members: never the data or the scoring


def set_key(tree: dict, key: str, value: Any, where: str) -> None:
    """tree[a][b] = value for key "a.b", as `dvc exp run -S` writes it; only a key params.yaml has."""
    *parents, leaf = key.split(".")
    section_ = tree
    for part in parents:
        section_ = section_.get(part) if isinstance(section_, dict) else None
    if not isinstance(section_, dict) or leaf not in section_:
        raise ParamsError(f"params: '{where}' overrides {key!r}, which is not a key of params.yaml")
    section_[leaf] = value


def with_overrides(params: Params | None = None, overrides: Mapping[str, Any] | None = None,
                   where: str = "overrides") -> Params:
    """`params` (the defaults when None) with `-S`-style overrides ({"train.epochs": 1, "seed": 3}),
    validated."""
    tree = to_tree(params if params is not None else Params())
    for key, value in (overrides or {}).items():
        set_key(tree, key, value, where)
    return from_tree(tree)


def member_params(params: Params, index: int) -> Params:
    """The params ensemble member `index` trains with, as written (resolve gives its TrainJob): params.yaml with the
    member's overrides ({model.name: bilstm_maxpool, seed: 0, train.epochs: 8}), validated."""
    where = f"ensemble.members[{index}]"
    overrides = params.ensemble.members[index]
    if not isinstance(overrides, dict) or not overrides:
        raise ParamsError(f"params: '{where}' is {overrides!r}; expected a mapping of overrides, "
                          "e.g. {{model.name: bilstm_maxpool, seed: 0}}")
    for key in overrides:
        if not isinstance(key, str) or not (key == "seed" or key.startswith(MEMBER_KEYS[1:])):
            raise ParamsError(f"params: '{where}' overrides {key!r}; a member may set only seed, model.*, train.* "
                              "and loss.* (every member trains and is scored on the same data)")
    tree = to_tree(params)
    tree["ensemble"]["members"] = []
    try:
        for key, value in overrides.items():
            set_key(tree, key, value, where)
        if tree["model"]["name"] == ENSEMBLE:
            raise ParamsError("params: a member is one architecture: name it with model.name (e.g. "
                              "{model.name: bilstm_lasttoken}); an ensemble cannot be a member")
        member = from_tree(tree)
    except ParamsError as e:
        raise ParamsError(f"{e} (in {where})" if where not in str(e) else str(e)) from None
    return member


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file (a typo anywhere fails every stage early)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the project root, where params.yaml lives")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ParamsError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    try:
        return from_tree(raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
