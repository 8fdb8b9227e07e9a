"""The reuse cache: finished models, frozen-encoder features and assembled encoders, keyed by content.

It lives outside the workspace, so queued experiments (each in its own temp copy) share it: `models/<run id>/`
(finished models an ensemble copies instead of training), `features/<key>.safetensors` (frozen-encoder features)
and `encoders/<name>/` (an encoder assembled from PyPI pieces: all-mpnet-base-v2). Keys are content fingerprints
(training.identity.run_id, training.features), so an entry is only ever reused by the run that would write the
same bytes.

    emotion-cache ls [--verify]                       # each entry: what it is, size, age, last use (intact?)
    emotion-cache prune --max-size 5GB --older-than 30d   # broken entries and killed writes' leftovers go too

Where: $EMOTION_CLASSIFIER_CACHE, else $XDG_CACHE_HOME/emotion-classifier, else ~/.cache/emotion-classifier.
After each write the cache is pruned to $EMOTION_CLASSIFIER_CACHE_MAX (default 20GB), least recently used first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError, one_line_errors

MAX_ENV = "EMOTION_CLASSIFIER_CACHE_MAX"
DEFAULT_MAX = "20GB"
STALE_TMP_S = 3600  # a temp entry older than this (or whose writer is gone) is a killed write's leftover
TIMING = "run.json"  # in a model entry only: how long its training took (a reuse counts it), its epochs' records


def cache_root() -> Path:
    return Path(os.environ.get("EMOTION_CLASSIFIER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emotion-classifier"))


def models_dir() -> Path:
    return cache_root() / "models"


def features_dir() -> Path:
    return cache_root() / "features"


def encoders_dir() -> Path:
    return cache_root() / "encoders"


@dataclass
class Entry:
    path: Path
    kind: str  # "model", "features" or "encoder"
    what: str
    size: int
    created: float
    last_use: float


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def touch(path: Path) -> None:
    """Mark an entry used now (its mtime is its last use: pruning drops the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def _model_entry(path: Path) -> Entry:
    try:
        cfg = json.loads((path / "config.json").read_text())
        run = cfg.get("train", {})
        what = (f"{cfg.get('name')} seed {run.get('seed')}, {run.get('epochs_run')} epochs, "
                f"{run.get('precision')} on {run.get('cpu_kind') or run.get('device')}")
    except (OSError, ValueError):
        what = "unreadable model directory"
    timing = path / TIMING
    created = timing.stat().st_mtime if timing.exists() else path.stat().st_mtime
    return Entry(path, "model", what, _size(path), created, path.stat().st_mtime)


def _feature_entry(path: Path) -> Entry:
    what, created = "frozen-encoder features", path.stat().st_mtime
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            shape = f.get_slice("features").get_shape()
        what = f"features {shape[0]} x {shape[1]} ({meta.get('what', 'frozen encoder')})"
        created = float(meta.get("created", created))
    except Exception:  # a damaged file is still an entry to list and prune
        what = "unreadable features file"
    return Entry(path, "features", what, path.stat().st_size, created, path.stat().st_mtime)


def _encoder_entry(path: Path) -> Entry:
    from .encoder import VERIFIED

    what = "encoder, verified" if (path / VERIFIED).exists() else "encoder, never verified"
    return Entry(path, "encoder", what, _size(path), path.stat().st_mtime, path.stat().st_mtime)


def problem(e: Entry) -> str | None:
    """What makes an entry unusable (every file against its manifest, a model's run.json readable), or None."""
    if e.kind == "model":
        from .model_dir import manifest_problem

        why = manifest_problem(e.path)
        if why is None and (e.path / TIMING).exists():
            try:
                json.loads((e.path / TIMING).read_text())
            except (OSError, ValueError):
                why = f"{TIMING} is not valid JSON (a truncated write)"
        return why
    if e.kind == "features":
        return "unreadable features file" if e.what == "unreadable features file" else None
    from .encoder import VERIFIED

    return None if (e.path / VERIFIED).exists() else f"no {VERIFIED} marker: an assembly that never finished"


def is_tmp(path: Path) -> bool:
    return path.name.startswith(".")


def entries() -> list[Entry]:
    out = []
    for folder, make in ((models_dir(), _model_entry), (features_dir(), _feature_entry),
                         (encoders_dir(), _encoder_entry)):
        if folder.is_dir():
            out += [make(p) for p in sorted(folder.iterdir()) if not is_tmp(p)]
    return out


def tmp_name(name: str, kind: str = "tmp") -> str:
    """A writer's temp name beside `name`: `.<name>.<host>.<pid>.<kind>`, so on a cache shared between machines a
    writer is judged alive only by its own host."""
    return f".{name}.{_host()}.{os.getpid()}.{kind}"


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "localhost"


def _writer_gone(path: Path) -> bool:
    """A temp dir's writer is gone when its process on this host is (another host's: only by age, STALE_TMP_S)."""
    m = re.fullmatch(r"\..*\.([^.]+)\.(\d+)\.(tmp|broken)", path.name)
    if not m or m.group(1) != _host():
        return False
    try:
        os.kill(int(m.group(2)), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def remove_stale_tmp(now: float | None = None) -> list[Path]:
    """Remove what killed writes left (temp dirs and files, an encoder's half-done assembly too); returns them."""
    now = now or time.time()
    gone = []
    for folder in (models_dir(), features_dir(), encoders_dir()):
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if is_tmp(p) and (_writer_gone(p) or now - p.stat().st_mtime > STALE_TMP_S):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                gone.append(p)
    return gone


def prune(max_size: int | None = None, older_than_s: float | None = None, keep: Path | None = None,
          now: float | None = None, broken: bool = False) -> list[Entry]:
    """Drop stale temp files, with `broken` every entry that fails its check (`problem`), entries unused for
    `older_than_s`, then the least recently used until the cache holds at most `max_size` bytes (never `keep`, the
    entry just written). Returns the entries removed."""
    now = now or time.time()
    remove_stale_tmp(now)
    removed = []
    for e in entries() if broken else []:
        if e.path != keep and problem(e):
            shutil.rmtree(e.path, ignore_errors=True) if e.path.is_dir() else e.path.unlink(missing_ok=True)
            removed.append(e)
    live = sorted(entries(), key=lambda e: e.last_use)
    total = sum(e.size for e in live)
    for e in live:
        if keep is not None and e.path == Path(keep):
            continue
        too_old = older_than_s is not None and now - e.last_use > older_than_s
        too_big = max_size is not None and total > max_size
        if too_old or too_big:
            shutil.rmtree(e.path, ignore_errors=True) if e.path.is_dir() else e.path.unlink(missing_ok=True)
            total -= e.size
            removed.append(e)
    return removed


def after_write(keep: Path) -> None:
    """The default cap, applied after each write."""
    try:
        cap = parse_size(os.environ.get(MAX_ENV) or DEFAULT_MAX)
    except ValueError as e:
        print(f"warning: ${MAX_ENV}: {e}; the cache is not pruned", file=sys.stderr)
        return
    for e in prune(cap, keep=keep):
        print(f"cache over ${MAX_ENV} ({human_size(cap)}): removed {e.kind} {e.path.name} ({human_size(e.size)}, "
              f"last used {human_age(time.time() - e.last_use)} ago)", file=sys.stderr)


UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in UNITS:
        raise ValueError(f"{text!r} is not a size; write e.g. 5GB, 500MB or 0")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def parse_age(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30d, 12h or 90m")
    return float(m.group(1)) * SPANS[m.group(2)]


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{max(0.0, seconds):.0f}s"


@one_line_errors
def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="emotion-cache", description="List or prune the model and feature cache "
                                 f"({cache_root()})")
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="each entry: what it is, size, age, last use")
    ls.add_argument("--verify", action="store_true", help="check every file against its manifest (reads them all)")
    pr = sub.add_parser("prune", help="drop killed writes' leftovers and broken entries, then entries by age and "
                        "size (least recently used first)")
    pr.add_argument("--max-size", help="keep at most this much, e.g. 5GB (0 empties the cache)")
    pr.add_argument("--older-than", help="drop entries unused for this long, e.g. 30d")
    args = ap.parse_args(argv)
    now = time.time()
    if args.command == "ls":
        found = entries()
        broken = 0
        for e in found:
            why = problem(e) if args.verify else None
            broken += why is not None
            print(f"{e.kind:8} {e.path.name:20.20} {human_size(e.size):>9}  age {human_age(now - e.created):>4}  "
                  f"used {human_age(now - e.last_use):>4} ago  {e.what}" + (f"  BROKEN: {why}" if why else ""))
        leftovers = [p for d in (models_dir(), features_dir(), encoders_dir()) if d.is_dir()
                     for p in sorted(d.iterdir()) if is_tmp(p)]
        for p in leftovers:
            print(f"{'temp':8} {p.name} {human_size(_size(p)):>9}  a write in progress or killed "
                  "(prune removes it once its writer is gone)")
        verified = f", {broken} broken (prune removes them)" if args.verify else ""
        print(f"{len(found)} entries{verified}, {human_size(sum(e.size for e in found))} in {cache_root()}")
        return
    try:
        max_size = parse_size(args.max_size) if args.max_size is not None else None
        older = parse_age(args.older_than) if args.older_than is not None else None
    except ValueError as e:
        raise UserError(f"emotion-cache prune: {e}") from None
    if max_size is None and older is None:
        max_size = parse_size(os.environ.get(MAX_ENV) or DEFAULT_MAX)
    gone = prune(max_size, older, now=now, broken=True)
    print(f"removed {len(gone)} entries ({human_size(sum(e.size for e in gone))}); "
          f"{human_size(sum(e.size for e in entries()))} left in {cache_root()}")


if __name__ == "__main__":
    main()
