"""`emotion-predict`: label texts from the shell with a trained `models/` directory.

    emotion-predict --text "Thank you so much, this made my day!"
    emotion-predict --input comments.csv --output labels.jsonl   # .txt .csv .tsv .jsonl .ndjson .json in
    emotion-predict --text "..." --all-scores --json

Output row i is input row i: a blank text keeps its row, with no labels. Input is read, scored and
written in chunks, so memory stays bounded (a .json array is read whole); a file output is written to a
temp file and renamed at the end (complete or absent, never half), a FIFO or device in place.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError, one_line_errors
from .files import atomic_path

CHUNK = 4096  # texts scored and written at a time


class InputError(UserError):
    pass


def _decoded_lines(path: Path, skip_invalid: bool) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of every line; invalid UTF-8 fails (or, with skip_invalid, warns
    and stands as an empty line, so later rows keep their place)."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if not skip_invalid:
                    raise InputError(f"{path}:{n}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                                     "fix the file or pass --skip-invalid") from None
                print(f"warning: {path}:{n}: invalid UTF-8, line skipped (its output row is empty)", file=sys.stderr)
                line = "\n"
            if "\r" in line.rstrip("\r\n"):
                raise InputError(f"{path}:{n}: a carriage return inside the line: are the line ends CR only (old "
                                 "Mac)? Convert them first: tr '\\r' '\\n'")
            yield n, line.removeprefix("\ufeff") if n == 1 else line  # a byte-order mark is not text


def _jsonl_texts(path: Path, lines) -> Iterator[str]:
    for n, line in lines:
        if not line.strip():
            yield ""  # a blank line is a blank row, as in every format
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not a JSON object: {e.msg}") from None
        yield _text_of(obj, f"{path}:{n}")


def _text_of(obj, where: str) -> str:
    if isinstance(obj, dict) and "text" in obj:
        if not isinstance(obj["text"], str):
            raise InputError(f"{where}: \"text\" is {json.dumps(obj['text'])}; expected a string")
        return obj["text"]
    raise InputError(f"{where}: expected an object with a \"text\" field")


def _json_texts(path: Path) -> Iterator[str]:
    """A JSON array of strings or of objects with a `text` field (read whole: JSON has no rows to stream)."""
    try:
        items = json.loads(path.read_bytes().decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: invalid UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a JSON array of texts (or of objects with a \"text\" field); "
                         "one object a line is .jsonl")
    for i, item in enumerate(items):
        yield item if isinstance(item, str) else _text_of(item, f"{path}: item {i}")


def _csv_texts(path: Path, lines, delimiter: str = ",") -> Iterator[str]:
    numbered = iter(lines)
    at = [0]  # the line being read, for errors

    def text_lines():
        for n, line in numbered:
            at[0] = n
            yield line

    # strict: a stray quote that never closes is an error, not one record holding the rest of the file
    rows = csv.DictReader(text_lines(), strict=True, delimiter=delimiter)
    start = 1  # the line where the next record starts
    try:
        if rows.fieldnames is None or "text" not in rows.fieldnames:
            raise InputError(f"{path}:1: no `text` column in the header ({rows.fieldnames}); the first row names "
                             "the columns")
        start = at[0] + 1
        for row in rows:
            yield row["text"] or ""
            start = at[0] + 1
    except csv.Error as e:
        raise InputError(f"{path}:{start}: the record starting here is not valid CSV ({e}): a stray double quote? "
                         "Inside a quoted field write it as \"\"") from None


FORMATS = ".txt (one text a line), .csv or .tsv (a `text` column), .jsonl or .ndjson (a `text` field a line), " \
          ".json (an array of texts)"


def iter_texts(path: str | Path, skip_invalid: bool = False) -> Iterator[str]:
    """Every row's text, one at a time, blank ones too (as ""): output row i is input row i, in every format."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}; give a file: {FORMATS}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_texts(path)
    lines = _decoded_lines(path, skip_invalid)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_texts(path, lines)
    if suffix in (".csv", ".tsv"):
        return _csv_texts(path, lines, "\t" if suffix == ".tsv" else ",")
    if suffix == ".txt":
        return (line.rstrip("\r\n") for _, line in lines)
    raise InputError(f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r}; give {FORMATS}")


def special(path: Path) -> bool:
    """A FIFO, a device (/dev/stdout, /dev/null) or a socket: written in place, never replaced by a file."""
    import stat

    return path.exists() and not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()


def check_output(path: str | Path, source: str | Path | None = None) -> Path:
    """Fail before any work if the output cannot be written; never replace a read-only file (as `cp` would not),
    nor the input being read."""
    path = Path(path)
    if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
        raise InputError(f"{path}: is the --input file; writing it would destroy what is being read: choose "
                         "another --output")
    if special(path):
        if not os.access(path, os.W_OK):
            raise InputError(f"{path}: cannot be written")
        return path
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give --output a file name (.jsonl or .csv)")
    if path.exists() and not path.stat().st_mode & 0o222:
        raise InputError(f"{path}: exists and is read-only; remove it or choose another --output")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    try:  # the real test, also for root and read-only file systems
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise InputError(f"{path}: cannot write in {path.parent} ({e.strerror})") from None
    return path


def records(texts, results, probs, labels, all_scores: bool) -> list[dict]:
    """One record a text; `results` and `probs` hold None for a blank text (kept, not scored: no labels)."""
    out = []
    for text, res, p in zip(texts, results, probs):
        rec = {"text": text, "labels": [{"label": label, "score": round(s, 4)} for label, s in res or []]}
        if all_scores:
            rec["scores"] = None if p is None else {label: round(float(v), 4) for label, v in zip(labels, p)}
        out.append(rec)
    return out


@contextlib.contextmanager
def sink(path: Path | None, labels: list[str], all_scores: bool, as_json: bool):
    """A function that writes a list of records: to `path` (.csv or .jsonl, atomically) or to stdout."""
    if path is None:
        def to_stdout(recs):
            print("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) if as_json else table(recs))
        yield to_stdout
        return
    # a special file (a FIFO, /dev/stdout) is written in place: atomic rename is for regular files
    target = contextlib.nullcontext(path) if special(path) else atomic_path(path)
    with target as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            w = csv.writer(f)
            w.writerow(["text", "labels", *([f"score_{n}" for n in labels] if all_scores else [])])

            def to_csv(recs):
                for r in recs:
                    row = [r["text"], ";".join(x["label"] for x in r["labels"])]
                    w.writerow(row + ([(r["scores"] or {}).get(n, "") for n in labels] if all_scores else []))
            yield to_csv
        else:
            yield lambda recs: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)


def table(recs: list[dict], width: int = 60) -> str:
    lines = []
    for r in recs:
        text = r["text"].replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        labs = ", ".join(f"{x['label']} {x['score']:.2f}" for x in r["labels"]) or (
            "(none above threshold)" if text.strip() else "(blank: not scored)")
        lines.append(f"{text:<{width}}  {labs}")
    return "\n".join(lines)


def label_stream(clf, texts, write, all_scores: bool, progress: bool) -> tuple[int, int]:
    """Score `texts` chunk by chunk, writing each chunk's records before reading the next. A blank text keeps its
    row, unscored. Returns (rows, texts scored)."""
    from tqdm.auto import tqdm

    rows = scored = 0
    # a bar on a terminal only (disable=None), gone when done: errors and the summary stay one line each
    with tqdm(unit="text", disable=None if progress else True, desc="predict", leave=False) as bar:
        while chunk := list(itertools.islice(texts, CHUNK)):
            keep = [i for i, t in enumerate(chunk) if t.strip()]
            probs = clf.predict_proba([chunk[i] for i in keep])
            results, row_probs = [None] * len(chunk), [None] * len(chunk)
            for i, res, p in zip(keep, clf.decide(probs, all_scores), probs):
                results[i], row_probs[i] = res, p
            write(records(chunk, results, row_probs, clf.labels, all_scores))
            rows, scored = rows + len(chunk), scored + len(keep)
            bar.update(len(chunk))
    return rows, scored


def parser() -> argparse.ArgumentParser:
    from .serving.options import add_model_options

    ap = argparse.ArgumentParser(prog="emotion-predict", description="Label English texts with emotions.")
    ap.add_argument("--text", action="append", default=[], help="a text to label (repeatable)")
    ap.add_argument("--input", help=f"a file: {FORMATS}")
    ap.add_argument("--output", help="write results to this .jsonl or .csv file")
    ap.add_argument("--all-scores", action="store_true", help="every label's score, not just those above threshold")
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout even on a terminal")
    ap.add_argument("--skip-invalid", action="store_true", help="skip (and warn about) invalid UTF-8 lines")
    add_model_options(ap)
    return ap


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the output's temp file is removed


@one_line_errors
def main(argv=None) -> None:
    import signal

    ap = parser()
    args = ap.parse_args(argv)
    if not args.text and not args.input:
        ap.error("give --text TEXT (repeatable) or --input FILE")
    from .serving.options import load_classifier

    signal.signal(signal.SIGTERM, _terminate)
    output = check_output(args.output, args.input) if args.output else None
    texts = itertools.chain(args.text, iter_texts(args.input, args.skip_invalid) if args.input else ())
    clf = load_classifier(args)
    as_json = args.json or not sys.stdout.isatty()
    with sink(output, clf.labels, args.all_scores, as_json) as write:
        rows, scored = label_stream(clf, texts, write, args.all_scores, progress=bool(args.input))
        if scored == 0:
            raise InputError(f"{args.input}: no texts to label" + (f" ({rows} blank rows)" if rows else ""))
    if output:
        blank = f" ({rows - scored} blank, kept unscored)" if rows > scored else ""
        print(f"{rows} rows{blank} -> {output}", file=sys.stderr)


if __name__ == "__main__":  # python -m emotion_classifier.predict: the same as emotion-predict
    main()
