"""`emotion-predict`: label texts from the shell with a trained `models/` directory.

    emotion-predict --text "Thank you so much, this made my day!"
    emotion-predict --input comments.txt --output labels.jsonl      # .txt/.csv/.jsonl in, .jsonl/.csv out
    emotion-predict --text "..." --all-scores --json

Input is read, scored and written in chunks, so memory stays bounded whatever the input's size; a
file output is written to a temp file and renamed at the end (complete or absent, never half).
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
    """(line number, text with its line ending) of every line; invalid UTF-8 fails (or, with skip_invalid, warns)."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if not skip_invalid:
                    raise InputError(f"{path}:{n}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                                     "fix the file or pass --skip-invalid") from None
                print(f"warning: {path}:{n}: invalid UTF-8, line skipped", file=sys.stderr)
                continue
            yield n, line.removeprefix("\ufeff") if n == 1 else line  # a byte-order mark is not text


def _jsonl_texts(path: Path, lines) -> Iterator[str]:
    for n, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not a JSON object: {e.msg}") from None
        if not isinstance(obj, dict) or "text" not in obj:
            raise InputError(f"{path}:{n}: expected an object with a \"text\" field")
        if not isinstance(obj["text"], str):
            raise InputError(f"{path}:{n}: \"text\" is {json.dumps(obj['text'])}; expected a string")
        yield obj["text"]


def _csv_texts(path: Path, lines) -> Iterator[str]:
    numbered = iter(lines)
    at = [0]  # the line being read, for errors

    def text_lines():
        for n, line in numbered:
            at[0] = n
            yield line

    # strict: a stray quote that never closes is an error, not one record holding the rest of the file
    rows = csv.DictReader(text_lines(), strict=True)
    try:
        if rows.fieldnames is None or "text" not in rows.fieldnames:
            raise InputError(f"{path}:1: no `text` column in the header ({rows.fieldnames})")
        start = at[0] + 1  # the line where the next record starts
        for row in rows:
            text = row["text"] or ""
            if text.strip():  # blank texts are skipped, in every format
                yield text
            start = at[0] + 1
    except csv.Error as e:
        raise InputError(f"{path}:{start}: the record starting here is not valid CSV ({e}): a stray double quote? "
                         "Inside a quoted field write it as \"\"") from None


def iter_texts(path: str | Path, skip_invalid: bool = False) -> Iterator[str]:
    """Texts of a .txt (one a line), .csv (a `text` column) or .jsonl (a `text` field) file, one at a time."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}; give a .txt, .csv "
                         "or .jsonl file")
    lines = _decoded_lines(path, skip_invalid)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_texts(path, lines)
    if suffix == ".csv":
        return _csv_texts(path, lines)
    return (text for _, line in lines if (text := line.rstrip("\r\n")).strip())  # blank lines skipped, as in .jsonl


def check_output(path: str | Path, source: str | Path | None = None) -> Path:
    """Fail before any work if the output cannot be written; never replace a read-only file (as `cp` would not),
    nor the input being read."""
    path = Path(path)
    if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
        raise InputError(f"{path}: is the --input file; writing it would destroy what is being read: choose "
                         "another --output")
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
    out = []
    for text, res, p in zip(texts, results, probs):
        rec = {"text": text, "labels": [{"label": label, "score": round(s, 4)} for label, s in res]}
        if all_scores:
            rec["scores"] = {label: round(float(v), 4) for label, v in zip(labels, p)}
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
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            w = csv.writer(f)
            w.writerow(["text", "labels", *([f"score_{n}" for n in labels] if all_scores else [])])

            def to_csv(recs):
                for r in recs:
                    row = [r["text"], ";".join(x["label"] for x in r["labels"])]
                    w.writerow(row + ([r["scores"][n] for n in labels] if all_scores else []))
            yield to_csv
        else:
            yield lambda recs: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)


def table(recs: list[dict], width: int = 60) -> str:
    lines = []
    for r in recs:
        text = r["text"].replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        labs = ", ".join(f"{x['label']} {x['score']:.2f}" for x in r["labels"]) or "(none above threshold)"
        lines.append(f"{text:<{width}}  {labs}")
    return "\n".join(lines)


def label_stream(clf, texts, write, all_scores: bool, progress: bool) -> int:
    """Score `texts` chunk by chunk, writing each chunk's records before reading the next."""
    from tqdm.auto import tqdm

    n = 0
    # a bar on a terminal only (disable=None), gone when done: errors and the summary stay one line each
    with tqdm(unit="text", disable=None if progress else True, desc="predict", leave=False) as bar:
        while chunk := list(itertools.islice(texts, CHUNK)):
            probs = clf.predict_proba(chunk)
            write(records(chunk, clf.decide(probs, all_scores), probs, clf.labels, all_scores))
            n += len(chunk)
            bar.update(len(chunk))
    return n


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emotion-predict", description="Label English texts with emotions.")
    ap.add_argument("--model-dir", default="models", help="a trained model directory (default: models)")
    ap.add_argument("--text", action="append", default=[], help="a text to label (repeatable)")
    ap.add_argument("--input", help="a .txt (one text a line), .csv or .jsonl (a `text` column/field) file")
    ap.add_argument("--output", help="write results to this .jsonl or .csv file")
    ap.add_argument("--all-scores", action="store_true", help="all 28 scores, not just labels above threshold")
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout even on a terminal")
    ap.add_argument("--thresholds", default="per_label", choices=["per_label", "global", "fixed"],
                    help="tuned per label or globally on dev (needs models/thresholds.json), or fixed 0.5")
    ap.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"],
                    help="fp32 (default: the same scores on every machine) | auto (bf16 where the CPU or GPU "
                         "does it natively, faster) | bf16")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible) | cpu | cuda | cuda:N")
    ap.add_argument("--quantize", action="store_true",
                    help="int8 weights for the linear layers, fp32 activations, CPU only (for transformers); "
                         "with --backend onnx, onnxruntime's int8 dynamic quantization")
    ap.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                    help="torch, or the model exported to ONNX and run by onnxruntime (pip install -e '.[onnx]')")
    ap.add_argument("--batch-size", type=positive, default=64, help="texts per forward pass (default 64)")
    ap.add_argument("--threads", type=positive, help="CPU threads (default: $EMOTION_CLASSIFIER_THREADS, else "
                    "$OMP_NUM_THREADS, else the cores other jobs leave idle now)")
    ap.add_argument("--skip-invalid", action="store_true", help="skip (and warn about) invalid UTF-8 lines")
    return ap


def positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return n


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the output's temp file is removed


@one_line_errors
def main(argv=None) -> None:
    import signal

    ap = parser()
    args = ap.parse_args(argv)
    if not args.text and not args.input:
        ap.error("give --text TEXT (repeatable) or --input FILE")
    from . import hardware
    from .inference import EmotionClassifier

    signal.signal(signal.SIGTERM, _terminate)
    hardware.use_threads(args.threads or hardware.free_threads())
    output = check_output(args.output, args.input) if args.output else None
    texts = itertools.chain(args.text, iter_texts(args.input, args.skip_invalid) if args.input else ())
    # Tuned thresholds are required: predicting at 0.5 by accident would be silently worse.
    clf = EmotionClassifier.load(args.model_dir, strategy=args.thresholds, precision=args.precision,
                                 batch_size=args.batch_size, quantize=args.quantize, device=args.device,
                                 backend=args.backend, require_thresholds=args.thresholds != "fixed")
    as_json = args.json or not sys.stdout.isatty()
    with sink(output, clf.labels, args.all_scores, as_json) as write:
        n = label_stream(clf, texts, write, args.all_scores, progress=bool(args.input))
        if n == 0:
            raise InputError(f"{args.input}: no texts to label")
    if output:
        print(f"{n} texts -> {output}", file=sys.stderr)


if __name__ == "__main__":  # python -m emotion_classifier.predict: the same as emotion-predict
    main()
