"""GoEmotions: read and validate the raw TSVs, write and read the prepared splits.

`data/prepared/` is the single source every stage after `prepare` reads.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .files import atomic_dir, read_json, write_json

SPLITS = ("train", "dev", "test")
COLUMNS = ("text", "label_ids", "id")


class DataError(UserError):
    """Bad input data; the message reads `file:line: problem`."""


def decode(path: Path) -> str:
    """The file as text: UTF-8, a leading byte-order mark dropped; invalid bytes fail with their line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                        "save the file as UTF-8") from None


def read_label_names(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}:0: file not found (run `dvc pull` to fetch the data)")
    lines = decode(path).splitlines()
    if not lines:
        raise DataError(f"{path}:1: file is empty; expected one label name a line")
    seen: dict[str, int] = {}
    for i, name in enumerate(lines, 1):
        if not name.strip():
            raise DataError(f"{path}:{i}: empty label name")
        if name.strip() in seen:  # "anger " and "anger" are one label
            raise DataError(f"{path}:{i}: label name {name.strip()!r} duplicates line {seen[name.strip()]}")
        seen[name.strip()] = i
    return [n.strip() for n in lines]


def _load_tsv(path: Path) -> pd.DataFrame:
    """Read one headerless TSV with Hugging Face `datasets` (CSV quoting, all columns as strings)."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    datasets.disable_progress_bars()
    features = datasets.Features({c: datasets.Value("string") for c in COLUMNS})
    # A private cache dir: the file may change in place (tests, a new pull), never read a stale cache.
    cache = tempfile.mkdtemp(prefix="emotion-ds-")
    try:
        ds = datasets.load_dataset(
            "csv",
            data_files=str(path),
            delimiter="\t",
            column_names=list(COLUMNS),
            features=features,
            keep_default_na=False,
            encoding="utf-8-sig",
            split="train",
            cache_dir=cache,
        )
        return ds.to_pandas()
    except (DatasetGenerationError, ValueError) as e:  # wraps pandas' parser error: report file:line
        cause = e.__cause__ or e.__context__ or e
        msg = str(cause).strip()
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            raise DataError(
                f"{path}:{m.group(2)}: expected {m.group(1)} tab-separated columns "
                f"(text, label ids, comment id), found {m.group(3)}"
            ) from None
        m = re.search(r"EOF inside string starting at row (\d+)", msg)
        if m:  # a quote that never closes: report the line it opens on
            raise DataError(f"{path}:{int(m.group(1)) + 1}: a double quote opens a quoted field that never closes; "
                            'quote the whole text and double its inner quotes ("a ""b"" c"), or remove the stray '
                            "quote") from None
        if "No columns to parse" in msg or "empty" in msg.lower():
            raise DataError(f"{path}:1: file is empty") from None
        raise DataError(f"{path}:0: cannot parse as TSV: {msg}") from None
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def read_split(path: str | Path, n_labels: int) -> pd.DataFrame:
    """Read and validate one split; returns columns id, text, label_ids, line (1-based, in the file)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}:0: file not found (run `dvc pull` to fetch the data)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}:1: file is empty")
    n_lines = sum(1 for line in decode(path).split("\n") if line.strip("\r"))
    df = _load_tsv(path)
    if len(df) == 0:
        raise DataError(f"{path}:1: file is empty")
    # A quoted text may span lines; count them so every message points at the physical line.
    extra = df["text"].str.count("\n").to_numpy()
    lines = 1 + np.concatenate([[0], np.cumsum(extra + 1)[:-1]])
    # No GoEmotions text holds a tab or a newline: one that does was merged by a stray quote.
    merged = np.flatnonzero(df["text"].str.contains("[\t\n]", regex=True).to_numpy())
    if merged.size:
        bad = int(merged[0])
        raise DataError(f"{path}:{lines[bad]}: a text runs over {extra[bad] + 1} lines ({n_lines} lines in the file, "
                        f"{len(df)} rows read): a double quote at its start opens a quoted field; quote the whole "
                        'text and double its inner quotes ("a ""b"" c"), or remove the stray quote')
    if len(df) != n_lines:
        raise DataError(f"{path}:0: {n_lines} lines in the file but {len(df)} rows read; expected one row a line")
    label_ids: list[list[int]] = []
    seen: dict[str, int] = {}
    for text, labels, cid, line in zip(df["text"], df["label_ids"], df["id"], lines):
        where = f"{path}:{line}"
        if cid is None or cid == "":
            raise DataError(
                f"{where}: expected 3 tab-separated columns (text, label ids, comment id); the comment id is missing"
            )
        if text is None or not text.strip():
            raise DataError(f"{where}: empty text")
        if labels is None or not labels.strip():
            raise DataError(f"{where}: no label ids")
        ids = []
        for tok in labels.split(","):
            tok = tok.strip()
            if not re.fullmatch(r"-?\d+", tok):
                raise DataError(f"{where}: label id {tok!r} is not an integer")
            v = int(tok)
            if not 0 <= v < n_labels:
                raise DataError(f"{where}: label id {v} is outside 0..{n_labels - 1}")
            ids.append(v)
        if cid in seen:
            raise DataError(f"{where}: comment id {cid!r} duplicates line {seen[cid]}")
        seen[cid] = int(line)
        label_ids.append(sorted(set(ids)))
    return pd.DataFrame({"id": df["id"], "text": df["text"], "label_ids": label_ids, "line": lines})


def read_raw(raw_dir: str | Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read and validate emotions.txt and the three splits, including ids shared across splits."""
    raw_dir = Path(raw_dir)
    names = read_label_names(raw_dir / "emotions.txt")
    splits = {s: read_split(raw_dir / f"{s}.tsv", len(names)) for s in SPLITS}
    owner: dict[str, tuple[str, int]] = {}
    for s in SPLITS:
        df = splits[s]
        for cid, line in zip(df["id"], df["line"]):
            if cid in owner:
                other, other_line = owner[cid]
                raise DataError(
                    f"{raw_dir / (s + '.tsv')}:{line}: comment id {cid!r} is also in {other}.tsv line {other_line}"
                )
            owner[cid] = (s, int(line))
    return splits, names


def subset(df: pd.DataFrame, max_examples: int, seed: int) -> pd.DataFrame:
    """A seeded random subset of `max_examples` rows (0 = all), kept in file order."""
    if max_examples <= 0 or max_examples >= len(df):
        return df
    keep = np.random.default_rng(seed).choice(len(df), size=max_examples, replace=False)
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def multi_hot(label_ids, n_labels: int) -> np.ndarray:
    y = np.zeros((len(label_ids), n_labels), dtype=np.float32)
    for i, ids in enumerate(label_ids):
        y[i, list(ids)] = 1.0
    return y


def prepare(raw_dir: str | Path, out_dir: str | Path, max_examples: int = 0, subset_seed: int = 0) -> dict:
    """Validate the raw data and write `out_dir` atomically: {split}.parquet and labels.json."""
    splits, names = read_raw(raw_dir)
    counts = {}
    with atomic_dir(out_dir) as tmp:
        for s, df in splits.items():
            df = subset(df, max_examples, subset_seed)
            y = multi_hot(df["label_ids"], len(names)).astype(np.int8)
            out = pd.DataFrame({"id": df["id"], "text": df["text"], "label_ids": df["label_ids"], "labels": list(y)})
            out.to_parquet(tmp / f"{s}.parquet", index=False)
            counts[s] = len(out)
        write_json(tmp / "labels.json", names)
    return counts


def load_prepared(prepared_dir: str | Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The prepared splits (id, text, label_ids, labels as multi-hot) and the label names."""
    prepared_dir = Path(prepared_dir)
    if not (prepared_dir / "labels.json").exists():
        raise DataError(f"{prepared_dir}:0: no prepared data; run `dvc repro prepare` first")
    names = read_json(prepared_dir / "labels.json")
    splits = {s: pd.read_parquet(prepared_dir / f"{s}.parquet") for s in SPLITS}
    return splits, names


def label_matrix(df: pd.DataFrame) -> np.ndarray:
    return np.stack(df["labels"].to_numpy()).astype(np.float32)


def content_hash(splits: dict[str, pd.DataFrame], names: list[str], which: tuple[str, ...] = ("train", "dev")) -> str:
    """sha256 of what a model learns and is selected on: each example's id, text and labels in order, and the label
    names. A relabelled example (its id kept) or a corrected copy of the data is other data."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(list(names)).encode())
    for s in which:
        df = splits[s]
        h.update(json.dumps([s, df["id"].astype(str).tolist(), df["text"].astype(str).tolist(),
                             label_matrix(df).astype(np.uint8).tolist()]).encode())
    return h.hexdigest()
