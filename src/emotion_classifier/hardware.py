"""Device and precision policy, in one place: the only module that looks at CPU flags or CUDA.

- `device`: auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N.
- `precision`: auto (bf16 autocast where the hardware does bf16 natively: CUDA with bf16, CPUs with
  AVX512-BF16 or AMX; fp32 elsewhere, since emulated bf16 is ~20x slower) | bf16 | fp32.
- Defaults differ by purpose: training defaults to auto (speed; the epoch is picked on dev with the
  same precision), scoring and prediction default to fp32, so the same weights give the same scores
  on every machine and tuned thresholds meet the probabilities they were tuned on.
"""

from __future__ import annotations

import os
import platform
import re
import warnings

import torch

from .errors import UserError
from .params import DEVICE, PRECISION

PRECISIONS = PRECISION.choices


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_kind() -> str:
    """amx | avx512_bf16 | avx512 | avx2 | ... (torch's own dispatch level, lower-cased, otherwise)."""
    cpu = torch.cpu
    if cpu._is_amx_tile_supported():
        return "amx"
    if cpu._is_avx512_bf16_supported():
        return "avx512_bf16"
    return torch.backends.cpu.get_cpu_capability().lower().replace(" ", "_")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_kind() in ("amx", "avx512_bf16")


def resolve_device(spec: str, what: str = "device") -> torch.device:
    """`spec` -> a torch.device, with an error that says what to set when CUDA is asked but absent."""
    if not re.fullmatch(DEVICE.pattern, str(spec)):
        raise UserError(f"{what} is {spec!r}; expected auto, cpu, cuda or cuda:N")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{what} is {spec} but no CUDA device is visible (torch {torch.__version__}, "
                               f"CUDA build: {torch.version.cuda or 'no'}); use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{what} is {spec} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def resolve_precision(precision: str, device: torch.device, what: str = "precision") -> str:
    """auto -> bf16 where native, else fp32. fp32 on CUDA is true fp32 (TF32 off), so it matches the CPU."""
    if precision not in PRECISIONS:
        raise UserError(f"{what} is {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        warnings.warn(f"{what} bf16: this CPU ({cpu_kind()}) has no native bf16 (AVX512-BF16/AMX); "
                      "emulated bf16 runs much slower than fp32", stacklevel=2)
    if precision == "fp32" and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return precision


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def use_all_cores() -> None:
    torch.set_num_threads(n_cores())


def describe(device: torch.device, precision: str) -> dict:
    """What produced a set of numbers: recorded next to them in metrics/."""
    out = {"device": str(device), "precision": precision, "threads": torch.get_num_threads(), "cpu_kind": cpu_kind()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def rng_state(device: torch.device) -> dict:
    """The RNG states a resumed run needs: the CPU one always, every CUDA device's on CUDA."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
