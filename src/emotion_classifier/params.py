"""The one validated loader for params.yaml: the schema composed above the registries (the field types are in
`fields`, which the architectures and losses use to declare their sections).

Every stage reads its params through `load_params`; an unknown key, a wrong type or an
out-of-range value fails here, naming the key and what is allowed, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .fields import DEVICE, PRECISION, Field, ParamsError, choice, integer, number
from .thresholds import STRATEGIES

MONITORS = ("dev_tuned_macro_f1", "dev_tuned_micro_f1", "dev_macro_f1", "dev_micro_f1", "dev_loss")


SCHEMA: dict[str, Any] = {
    "seed": integer(0),
    "data": {
        "raw_dir": Field(str),
        "prepared_dir": Field(str),
        "max_examples": integer(0),
    },
    "prepare": {
        "subset_seed": integer(0),
    },
    "analyze_dataset": {
        "max_length": integer(8, 4096),
    },
    "model": {  # and one sub-section per architecture, from its registry entry: see schema()
        "name": Field(str),
        "encoder": Field(str),
        "max_length": integer(8, 4096),
        "mask_words": {"NAME": Field(str), "RELIGION": Field(str)},  # text.MASK_TOKENS without brackets
    },
    "train": {
        "epochs": integer(1),
        "batch_size": integer(1),
        "lr": number(0, 10, lo_open=True),
        "weight_decay": number(0, 1),
        "optimizer": choice("adam", "adamw", "sgd"),
        "scheduler": choice("none", "linear", "cosine"),
        "warmup_ratio": number(0, 1),
        "grad_clip": number(0),
        "loss": Field(str),  # one of the registered losses: see schema()
        "teacher": Field(str, pattern=r"([\w.-]+\.npz)?", pattern_text="a .npz file name in teachers/, or \"\""),
        "distill_weight": number(0, 1),
        "rdrop_alpha": number(0, 100),
        "precision": PRECISION,
        "device": DEVICE,
        "processes": integer(1, 1024),
        "monitor": choice(*MONITORS),
        "patience": integer(0),
        "bucket_chunk": integer(1),
    },
    "loss": {},  # one sub-section per loss that has settings, from its registry entry: see schema()
    "tune_thresholds": {
        "onnx_int8": Field(bool),
    },
    "thresholds": {
        "metric": choice("micro_f1", "macro_f1"),
        "min_positives": integer(0),
    },
    "evaluate": {
        "thresholds": choice(*STRATEGIES),
        "precision": PRECISION,
        "device": DEVICE,
        "bootstrap_resamples": integer(100, 100_000),
        "bootstrap_seed": integer(0),
        "ci_level": number(0.5, 0.999),
    },
    "ensemble": {
        "members": Field(list),  # each a mapping of overrides: see member_params
    },
    "compare": {
        "tfidf_max_features": integer(100),
        "tfidf_ngram_max": integer(1, 3),
        "C": number(0, lo_open=True),
    },
}


@dataclass(frozen=True)
class Recipe:
    """An architecture's best training settings, `model.<name>.train`: any keys of `train:`, each checked as there.
    They fill the train settings that params.yaml leaves null (see resolve)."""

    train: dict  # the schema of `train:`

    def check(self, key: str, value: Any) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ParamsError(f"params: '{key}' is {value!r}; expected a mapping of train settings, "
                              "e.g. {epochs: 5, loss: bce}")
        out = {}
        for k, v in value.items():
            if k not in self.train:
                raise ParamsError(f"params: '{key}.{k}' is not a train setting; allowed keys: "
                                  f"{', '.join(self.train)}")
            if v is None:
                raise ParamsError(f"params: '{key}.{k}' is null; a recipe gives a value or leaves the key out")
            out[k] = self.train[k].check(f"{key}.{k}", v)
        return out


ENSEMBLE = "ensemble"  # the model.name that trains ensemble.members, each with its own recipe
NULLABLE = ("train",)  # sections whose keys may be null: "the architecture's recipe decides"


def _validate(raw: Any, schema: dict, prefix: str) -> dict:
    if not isinstance(raw, dict):
        raise ParamsError(f"params: '{prefix or '<top>'}' must be a mapping, got {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            raise ParamsError(
                f"params: unknown key '{path}'; allowed keys here: {', '.join(sorted(schema))}"
            )
        spec = schema[key]
        if value is None and prefix in NULLABLE:
            out[key] = None
        else:
            out[key] = _validate(value, spec, path) if isinstance(spec, dict) else spec.check(path, value)
    for key in schema:  # an architecture without a recipe section has an empty one
        if key not in raw and isinstance(schema[key], Recipe):
            out[key] = {}
    missing = [k for k in schema if k not in raw and not isinstance(schema[k], Recipe)]
    if missing:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ParamsError(f"params: {where} lacks key(s) {', '.join(missing)}")
    return out


def schema() -> dict:
    """SCHEMA with `model.name` choosing among the registered architectures (or an ensemble of them) and each
    one's section, its recipe (`train`) included; `train.loss` among the registered losses, each with settings
    its `loss.<name>` section."""
    from .architectures import REGISTRY  # imports torch: only when params are validated
    from .training.losses import REGISTRY as LOSSES

    train = {**SCHEMA["train"], "loss": choice(*LOSSES)}
    model = {**SCHEMA["model"], "name": choice(*REGISTRY, ENSEMBLE),
             **{a.name: {**a.schema, "train": Recipe(train)} for a in REGISTRY.values()}}
    return {**SCHEMA, "model": model, "train": train, "loss": {k: v.schema for k, v in LOSSES.items() if v.schema}}


def validate(raw: dict) -> dict:
    """The checked params tree, as written: `train:` may hold nulls (resolve fills them for a run)."""
    params = _validate(raw, schema(), "")
    members = params["ensemble"]["members"]
    if params["model"]["name"] == ENSEMBLE:
        if not members:
            raise ParamsError("params: model.name is ensemble but ensemble.members is empty; list its architectures, "
                              "e.g. [{model.name: transformer_finetune}, {model.name: bilstm_lasttoken}]")
    else:
        resolve(params)  # a null train setting that no recipe fills fails now
    for index in range(len(members)):
        member_params(params, index)
    return params


def resolve(params: dict) -> dict:
    """The params one architecture trains with: each `train.K` that params.yaml sets (not null) as it is, so an
    explicit `-S train.K=V` always wins; each null one from the architecture's recipe, `model.<name>.train.K`.
    Idempotent: resolved params come back equal."""
    name = params["model"]["name"]
    if name == ENSEMBLE:
        raise ParamsError("params: model.name is ensemble, which is no single architecture: each of ensemble.members "
                          "trains with its own recipe (one architecture per member)")
    recipe = params["model"][name]["train"]
    train = {k: recipe.get(k) if v is None else v for k, v in params["train"].items()}
    for key, value in train.items():
        if value is None:
            raise ParamsError(f"params: 'train.{key}' is null (the architecture's recipe decides) and "
                              f"'model.{name}.train' sets no {key}: set one of them")
    return {**params, "train": train}


def recipe_sources(params: dict) -> dict[str, str]:
    """Where each setting of the architecture's recipe comes from in these (unresolved) params: 'recipe' or
    'train.K' (an explicit value, which won)."""
    name = params["model"]["name"]
    return {k: (f"train.{k}" if params["train"][k] is not None else "recipe")
            for k in params["model"][name]["train"]}


MEMBER_KEYS = ("seed", "model.", "train.", "loss.")  # what may differ between members: never the data or the scoring


def set_key(params: dict, key: str, value: Any, where: str) -> None:
    """params[a][b] = value for key "a.b", as `dvc exp run -S` writes it; only a key params.yaml has."""
    *parents, leaf = key.split(".")
    section = params
    for part in parents:
        section = section.get(part) if isinstance(section, dict) else None
    if not isinstance(section, dict) or leaf not in section:
        raise ParamsError(f"params: '{where}' overrides {key!r}, which is not a key of params.yaml")
    section[leaf] = value


def member_params(params: dict, index: int, resolved: bool = True) -> dict:
    """The params ensemble member `index` trains with: params.yaml with the member's overrides, written as
    `dvc exp run -S` takes them ({model.name: bilstm_maxpool, seed: 0, train.epochs: 8}), validated, and its
    train settings resolved (explicit ones, then its architecture's recipe), unless `resolved` is False."""
    import copy

    where = f"ensemble.members[{index}]"
    overrides = params["ensemble"]["members"][index]
    if not isinstance(overrides, dict) or not overrides:
        raise ParamsError(f"params: '{where}' is {overrides!r}; expected a mapping of overrides, "
                          "e.g. {{model.name: bilstm_maxpool, seed: 0}}")
    member = copy.deepcopy(params)
    for key, value in overrides.items():
        if not isinstance(key, str) or not (key == "seed" or key.startswith(MEMBER_KEYS[1:])):
            raise ParamsError(f"params: '{where}' overrides {key!r}; a member may set only seed, model.*, train.* "
                              "and loss.* (every member trains and is scored on the same data)")
        set_key(member, key, value, where)
    member["ensemble"]["members"] = []
    try:
        if member["model"]["name"] == ENSEMBLE:
            raise ParamsError("params: a member is one architecture: name it with model.name (e.g. "
                              "{model.name: bilstm_lasttoken}); an ensemble cannot be a member")
        member = _validate(member, schema(), "")
        return resolve(member) if resolved else member
    except ParamsError as e:
        raise ParamsError(f"{e} (in {where})") from None


def load_params(path: str | Path = "params.yaml") -> dict:
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
        return validate(raw)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
