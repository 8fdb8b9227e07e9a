"""A trained model's directory, its format in one place: what each file is called, the manifest that says it is
whole, an ensemble's member directories, the weights' hash and `thresholds.json` (read and written). Nothing here
imports model code (a stage that only reads these files depends on no architecture); building, saving and loading
the model itself is `model_dir.model`.

    models/
      model.safetensors  config.json  tokenizer/   the model (members/<i>/ alike, for an ensemble's further models)
      manifest.json                                each file's size and sha256, written last
      thresholds.json                              tune_thresholds': thresholds (and member weights) for these weights
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_path, file_hash, write_json

FORMAT_VERSION = 1  # config.json's; a reader refuses another
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer"
MEMBERS = "members"  # an ensemble's further models: members/1, members/2, ... each a model directory
# Each file `save` wrote, with its sha256, written last: a directory whose manifest is missing or disagrees is
# incomplete or damaged (a copy killed half-way), and nothing reuses it.
MANIFEST = "manifest.json"
THRESHOLDS = "thresholds.json"  # tune_thresholds: thresholds (and member weights) tuned for these weights


def model_files(model_dir: str | Path) -> list[str]:
    """What `save` writes, relative to the directory: weights, config, the tokenizer's files."""
    model_dir = Path(model_dir)
    tokenizer = sorted(f.relative_to(model_dir).as_posix() for f in (model_dir / TOKENIZER).rglob("*") if f.is_file())
    return [WEIGHTS, CONFIG, *tokenizer]


def write_manifest(directory: str | Path, names: list[str]) -> None:
    """`names` (relative paths) with each file's sha256 and size, atomically, as the directory's last write."""
    directory = Path(directory)
    files = {n: {"sha256": file_hash(directory / n), "size": (directory / n).stat().st_size} for n in names}
    with atomic_path(directory / MANIFEST) as tmp:
        tmp.write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")


def manifest_problem(directory: str | Path) -> str | None:
    """None when the manifest is there and every file it names has its size and sha256; else what is wrong."""
    directory = Path(directory)
    try:
        files = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["files"]
        assert isinstance(files, dict) and files
    except FileNotFoundError:
        return f"no {MANIFEST} (written last: the directory was never finished)"
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        return f"{MANIFEST} is not a manifest"
    for name, want in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want.get("size") or file_hash(path) != want.get("sha256"):
            return f"{name} differs from its manifest"
    return None


def member_dir(model_dir: str | Path, index: int) -> Path:
    """Where ensemble member `index` lives: the first in the directory itself, the others in members/<index>."""
    return Path(model_dir) if index == 0 else Path(model_dir) / MEMBERS / str(index)


def member_dirs(model_dir: str | Path) -> list[Path]:
    """An ensemble's further model directories, in member order (none for a single model)."""
    root = Path(model_dir) / MEMBERS
    found = [d for d in root.iterdir() if d.is_dir() and d.name.isdigit()] if root.is_dir() else []
    return sorted(found, key=lambda d: int(d.name))


def weights_hash(model_dir: str | Path) -> str:
    """sha256 of the weights file (of every member's, for an ensemble): ties thresholds (and anything else
    derived) to these exact weights."""
    own = file_hash(Path(model_dir) / WEIGHTS)
    members = member_dirs(model_dir)
    if not members:
        return own
    return hashlib.sha256(" ".join([own, *(file_hash(d / WEIGHTS) for d in members)]).encode()).hexdigest()


class ModelDirError(UserError):
    pass



# ---------------------------------------------------------------- thresholds.json


class ThresholdsError(UserError):
    pass


# thresholds.json's section of thresholds tuned on the onnxruntime int8 model's dev scores: int8 shifts scores enough
# that the fp32 thresholds cost ~.02 dev macro F1, its own ~.004 (benchmarks/quantization.py)
ONNX_INT8 = "onnx_int8"


def read_tuned(model_dir: str | Path, labels: list[str] | None = None) -> dict:
    """thresholds.json (thresholds, and an ensemble's member weights), refused unless it was tuned for these
    exact weights and, given the model's `labels`, holds one threshold in [0, 1] per label."""
    model_dir = Path(model_dir)
    path = model_dir / THRESHOLDS
    if not path.exists():
        raise ThresholdsError(f"{path}: no tuned thresholds; `dvc pull`, or tune them: `dvc repro tune_thresholds`")
    try:
        tuned = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f":{e.lineno}:{e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise ThresholdsError(f"{path}{where}: not valid JSON; `dvc pull` or `dvc checkout models`, or re-tune: "
                              "`dvc repro tune_thresholds`") from None
    if not isinstance(tuned, dict) or not isinstance(tuned.get("strategies"), dict):
        raise ThresholdsError(f"{path}: no `strategies` mapping (strategy -> thresholds); re-tune them: "
                              "`dvc repro tune_thresholds`")
    actual = weights_hash(model_dir)
    if tuned.get("weights_sha256") != actual:
        raise ThresholdsError(
            f"{path}: tuned for other weights (sha256 {str(tuned.get('weights_sha256'))[:12]}..., the model in "
            f"{model_dir} has {actual[:12]}...); re-tune them: `dvc repro tune_thresholds`")
    for section in (tuned, tuned.get(ONNX_INT8) or {"strategies": {}}):
        for name, values in section["strategies"].items():
            ok = isinstance(values, list) and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values)
            if not ok or (labels is not None and len(values) != len(labels)):
                raise ThresholdsError(f"{path}: strategy {name!r} holds "
                                      f"{len(values) if isinstance(values, list) else repr(values)} thresholds"
                                      + (f"; the model has {len(labels)} labels" if labels is not None else "")
                                      + " (one number in [0, 1] each); re-tune them: `dvc repro tune_thresholds`")
    return tuned


def strategy_thresholds(tuned: dict, strategy: str, model_dir: str | Path, onnx_int8: bool = False) -> np.ndarray:
    """`strategy`'s thresholds; with `onnx_int8`, those tuned for the onnxruntime int8 model where tuned."""
    if onnx_int8 and strategy != "fixed" and isinstance(tuned.get(ONNX_INT8), dict):
        tuned = tuned[ONNX_INT8]
    elif onnx_int8 and strategy != "fixed":
        import warnings

        warnings.warn(f"{Path(model_dir) / THRESHOLDS}: no thresholds tuned for the int8 model (tuned without "
                      "onnxruntime?); using the fp32 ones, which cost ~.02 dev macro F1 under int8", stacklevel=3)
    if strategy not in tuned["strategies"]:
        raise ThresholdsError(f"{Path(model_dir) / THRESHOLDS}: no strategy {strategy!r}; it has "
                              f"{', '.join(tuned['strategies'])}")
    return np.asarray(tuned["strategies"][strategy], dtype=np.float32)


def write_tuned(model_dir: str | Path, tuned: dict) -> None:
    """thresholds.json, tied to the weights it was tuned for (read_tuned refuses it for any others)."""
    write_json(Path(model_dir) / THRESHOLDS, {"weights_sha256": weights_hash(model_dir), **tuned})
