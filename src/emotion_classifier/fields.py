"""The types of a params field, with their one-line errors: what `params/`, each architecture and each loss declare
their sections with. Imports nothing of the package but `errors`, so the registries depend on it, not on params."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import UserError


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


def integer(lo=None, hi=None) -> Field:
    return Field(int, lo, hi)


def number(lo=None, hi=None, lo_open=False) -> Field:
    return Field(float, lo, hi, lo_open=lo_open)


def choice(*choices) -> Field:
    return Field(str, choices=choices)


# The same spellings hardware.resolve_device takes (kept literal here: fields imports no torch).
DEVICE = Field(str, pattern=r"auto|cpu|cuda(:\d+)?", pattern_text="auto, cpu, cuda or cuda:N")
PRECISION = choice("auto", "bf16", "fp32")


# ---------------------------------------------------------------- typed sections: frozen dataclasses of fields

def param(check: Field, default: Any = dataclasses.MISSING, nullable: bool = False):
    """A section's field: its check and its default side by side (`nullable`: null means "the recipe decides")."""
    return dataclasses.field(default=default, metadata={"check": check, "nullable": nullable})


def section(cls: type):
    """A field holding a nested section, its defaults by default."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls})


def build_section(cls: type, raw: Any, prefix: str):
    """`cls` from a params mapping: every key known, every value checked (one-line errors naming the key), every
    absent key its default."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"params: '{prefix or '<top>'}' must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ParamsError(f"params: unknown key '{_join(prefix, key)}'; allowed keys here: {', '.join(known)}")
    values = {}
    for key, value in raw.items():
        meta = known[key].metadata
        if "build" in meta:  # a section composed from a registry
            values[key] = meta["build"](value, _join(prefix, key))
        elif "section" in meta:
            values[key] = build_section(meta["section"], value, _join(prefix, key))
        elif value is None and meta.get("nullable"):
            values[key] = None
        else:
            checked = meta["check"].check(_join(prefix, key), value)
            values[key] = tuple(checked) if isinstance(checked, list) else checked  # frozen all the way
    missing = [k for k, f in known.items() if k not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ParamsError(f"params: '{prefix}' lacks key(s) {', '.join(missing)}")
    return cls(**values)


def as_tree(obj: Any) -> Any:
    """A section as the plain mapping params.yaml writes (for YAML, JSON, hashing)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)
