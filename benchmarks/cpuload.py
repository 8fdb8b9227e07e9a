"""Is the CPU idle? Every timing benchmark samples the machine before and after its runs and says "contended" (or,
with --strict, refuses to start) when other work was running: another job skews every ratio it prints.

    with cpuload.watch(strict=args.strict) as load:
        ... time things ...
    load["contended"], load["before"], load["after"]   # also printed
"""

from __future__ import annotations

import contextlib
import os
import time

BUSY_CORES = 0.3  # cores' worth of CPU time used over a half-second sample: more is another job, not background noise


def busy(s: dict) -> bool:
    """In cores, not a share of the machine: one busy process is contention on 2 cores and on 64 alike."""
    return s["busy"] is not None and s["busy"] * (os.cpu_count() or 1) > BUSY_CORES


def _ticks() -> dict[int, int]:
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                out[int(pid)] = int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                pass
    return out


def _name(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")[:80].strip()
    except OSError:
        return "?"


def sample(seconds: float = 0.5) -> dict:
    """The machine's busy share over `seconds`, the load average, and the processes (not this one or its children)
    that used more than a fifth of a core meanwhile."""
    from emotion_classifier import hardware

    if not os.path.isdir("/proc"):
        return {"busy": None, "load_average": None, "processes": []}
    mine = {os.getpid()}
    before = _ticks()
    busy = hardware.cpu_busy(seconds)
    after = _ticks()
    hz = os.sysconf("SC_CLK_TCK")
    procs = [(pid, (after[pid] - before.get(pid, after[pid])) / hz / seconds) for pid in after]
    others = [f"{_name(pid)} ({share:.0%} of a core)" for pid, share in sorted(procs, key=lambda p: -p[1])
              if share > 0.2 and pid not in mine and os.getppid() != pid]
    return {"busy": busy, "load_average": round(os.getloadavg()[0], 2), "processes": others}


def describe(s: dict) -> str:
    if s["busy"] is None:
        return "unknown (no /proc)"
    who = f": {'; '.join(s['processes'][:3])}" if s["processes"] else ""
    return f"{s['busy']:.0%} busy, load average {s['load_average']}{who}"


@contextlib.contextmanager
def watch(strict: bool = False, seconds: float = 0.5):
    before = sample(seconds)
    if strict and busy(before):
        raise SystemExit(f"the CPU is not idle ({describe(before)}): stop the other jobs, or drop --strict and the "
                         "figures are marked contended")
    load = {"before": before}
    t0 = time.time()
    yield load
    load["after"] = sample(seconds)
    load["seconds"] = time.time() - t0
    load["contended"] = busy(before) or busy(load["after"])
    verdict = "CONTENDED: these figures are not for the README" if load["contended"] else "idle before and after"
    print(f"CPU {verdict} (before: {describe(before)}; after: {describe(load['after'])})")
