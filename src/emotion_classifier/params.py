"""The one validated loader for params.yaml.

Every stage reads its params through `load_params`; an unknown key, a wrong type or an
out-of-range value fails here, naming the key and what is allowed, before any work starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

MONITORS = ("dev_tuned_macro_f1", "dev_tuned_micro_f1", "dev_macro_f1", "dev_micro_f1", "dev_loss")
ARCHITECTURES = (
    "bilstm_lasttoken",
    "bilstm_maxpool",
    "transformer_featureextract",
    "transformer_finetune",
)


class ParamsError(UserError):
    """params.yaml holds a key, type or value the pipeline cannot use."""


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    lo_open: bool = False  # lo itself is excluded (e.g. learning rate > 0)
    pattern: str | None = None  # a string must match it in full
    pattern_text: str = ""

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.pattern:
            return self.pattern_text
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
            self.kind, "a number"
        )
        if self.lo is not None and self.hi is not None:
            return f"{name} in {'(' if self.lo_open else '['}{self.lo}, {self.hi}]"
        if self.lo is not None:
            return f"{name} {'>' if self.lo_open else '>='} {self.lo}"
        return name

    def check(self, key: str, value: Any) -> Any:
        ok_type = isinstance(value, self.kind) and not (isinstance(value, bool) and self.kind is not bool)
        # YAML writes 1e-3 as a string unless it has a dot; accept numbers written either way.
        if not ok_type and self.kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                value, ok_type = float(value), True
            except ValueError:
                pass
        if not ok_type:
            raise ParamsError(f"params: '{key}' is {value!r} ({type(value).__name__}); expected {self.allowed()}")
        if self.choices and value not in self.choices:
            raise ParamsError(f"params: '{key}' is {value!r}; expected {self.allowed()}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ParamsError(f"params: '{key}' is {value!r}; expected {self.allowed()}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamsError(f"params: '{key}' is {value!r}; expected {self.allowed()}")
            too_low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
            too_high = self.hi is not None and value > self.hi
            if too_low or too_high:
                raise ParamsError(f"params: '{key}' is {value!r}; expected {self.allowed()}")
        return value


def _int(lo=None, hi=None):
    return Field(int, lo, hi)


def _num(lo=None, hi=None, lo_open=False):
    return Field(float, lo, hi, lo_open=lo_open)


def _choice(*choices):
    return Field(str, choices=choices)


# The same spellings hardware.resolve_device takes (kept literal here: params imports no torch).
DEVICE = Field(str, pattern=r"auto|cpu|cuda(:\d+)?", pattern_text="auto, cpu, cuda or cuda:N")
PRECISION = _choice("auto", "bf16", "fp32")


_BILSTM = {
    "embedding_dim": _int(1),
    "init_embeddings": _choice("encoder", "random"),
    "hidden_size": _int(1),
    "num_layers": _int(1, 8),
    "dropout": _num(0, 0.95),
    "bidirectional": Field(bool),
}

SCHEMA: dict[str, Any] = {
    "seed": _int(0),
    "data": {
        "raw_dir": Field(str),
        "prepared_dir": Field(str),
        "max_examples": _int(0),
    },
    "prepare": {
        "subset_seed": _int(0),
    },
    "analyze_dataset": {
        "max_length": _int(8, 4096),
    },
    "model": {
        "name": _choice(*ARCHITECTURES),
        "encoder": Field(str),
        "max_length": _int(8, 4096),
        "bilstm_lasttoken": dict(_BILSTM),
        "bilstm_maxpool": dict(_BILSTM),
        "transformer_featureextract": {
            "pooling": _choice("cls", "mean"),
            "feature_layers": _int(1, 64),
            "head_layers": _int(0, 8),
            "head_hidden": _int(1),
            "dropout": _num(0, 0.95),
            "feature_batch_size": _int(1),
        },
        "transformer_finetune": {
            "pooling": _choice("pooler", "cls", "mean"),
            "dropout": _num(0, 0.95),
            "encoder_dropout": _num(0, 0.95),
            "encoder_lr": _num(0, 1, lo_open=True),
            "layer_lr_decay": _num(0, 1, lo_open=True),
            "unfreeze_layers_per_epoch": _int(0),
        },
    },
    "train": {
        "epochs": _int(1),
        "batch_size": _int(1),
        "lr": _num(0, 10, lo_open=True),
        "weight_decay": _num(0, 1),
        "optimizer": _choice("adam", "adamw", "sgd"),
        "scheduler": _choice("none", "linear", "cosine"),
        "warmup_ratio": _num(0, 1),
        "grad_clip": _num(0),
        "loss": _choice("bce", "weighted_bce", "focal"),
        "focal_gamma": _num(0, 10),
        "pos_weight_cap": _num(1),
        "precision": PRECISION,
        "device": DEVICE,
        "processes": _int(1, 1024),
        "monitor": _choice(*MONITORS),
        "patience": _int(0),
        "bucket_chunk": _int(1),
    },
    "thresholds": {
        "metric": _choice("micro_f1", "macro_f1"),
        "min_positives": _int(0),
    },
    "evaluate": {
        "thresholds": _choice("per_label", "global", "fixed"),
        "precision": PRECISION,
        "device": DEVICE,
        "bootstrap_resamples": _int(100, 100_000),
        "bootstrap_seed": _int(0),
        "ci_level": _num(0.5, 0.999),
    },
    "compare": {
        "tfidf_max_features": _int(100),
        "tfidf_ngram_max": _int(1, 3),
        "C": _num(0, lo_open=True),
    },
}


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
        out[key] = _validate(value, spec, path) if isinstance(spec, dict) else spec.check(path, value)
    missing = [k for k in schema if k not in raw]
    if missing:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ParamsError(f"params: {where} lacks key(s) {', '.join(missing)}")
    return out


def validate(raw: dict) -> dict:
    return _validate(raw, SCHEMA, "")


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
