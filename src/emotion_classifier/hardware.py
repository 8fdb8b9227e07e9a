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
from .fields import DEVICE, PRECISION

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


THREADS_ENV = ("EMOTION_CLASSIFIER_THREADS", "OMP_NUM_THREADS")  # the first one set wins


def threads_setting() -> int | None:
    """The thread count a user or a launcher chose ($EMOTION_CLASSIFIER_THREADS, else $OMP_NUM_THREADS), or None."""
    for var in THREADS_ENV:
        value = os.environ.get(var, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise UserError(f"${var} is {value!r}: expected a whole number of threads, at least 1")
            return int(value)
    return None


def threads(processes: int = 1) -> int:
    """Threads for each of `processes` processes on this machine: the user's setting as it is, else this process's
    cores (its CPU affinity: `taskset -c 0` or a container's cpuset gives 1) shared among them."""
    return threads_setting() or max(1, n_cores() // processes)


def free_threads() -> int:
    """For a one-off job (emotion-predict), not a stage: the user's setting, else the cores other work leaves idle
    now. Measured beside one busy process on 2 cores (benchmarks/contention.py, AMX Xeon): a BiLSTM epoch ran 5.3x
    slower with 2 threads, not at all slower with 1. Stages never use it: a result depends on the thread count in
    its last bits, and a stage's output must not depend on what else ran."""
    busy = None if threads_setting() else cpu_busy(0.2)
    if busy is None:
        return threads()
    return max(1, min(n_cores(), round((1 - busy) * (os.cpu_count() or 1))))


_TORCH_DEFAULT = torch.get_num_threads()  # what torch chose on its own, before any caller


def use_threads(count: int | None = None) -> int:
    """torch's thread count: `count` when given (a --threads flag); else left as it is when a caller has set it
    (torch.set_num_threads: it differs from torch's own choice), else threads(). Returns the count."""
    if count is not None:
        torch.set_num_threads(count)
    elif torch.get_num_threads() == _TORCH_DEFAULT:
        torch.set_num_threads(threads())
    return torch.get_num_threads()


def cpu_busy(seconds: float = 1.0) -> float | None:
    """The share of this machine's CPU time spent busy over the next `seconds` (0..1; /proc/stat), or None where
    there is no /proc. A benchmark times only on an idle CPU: another job skews every ratio it prints."""
    import time

    def sample():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return None
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


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
