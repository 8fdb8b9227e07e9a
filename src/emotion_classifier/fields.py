"""The types of a params field, with their one-line errors: what `params.py`, each architecture and each loss declare
their sections with. Imports nothing of the package but `errors`, so the registries depend on it, not on params."""

from __future__ import annotations

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
