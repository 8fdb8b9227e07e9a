"""`emotion-predict`: label texts from the shell with a trained `models/` directory.

    emotion-predict --text "Thank you so much, this made my day!"
    emotion-predict --input comments.txt --output labels.jsonl      # .txt/.csv/.jsonl in, .jsonl/.csv out
    emotion-predict --text "..." --all-scores --json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .io import atomic_path


class InputError(ValueError):
    pass


def _decoded_lines(path: Path, skip_invalid: bool) -> list[tuple[int, str]]:
    """(line number, text) of every line, failing (or warning, with skip_invalid) on invalid UTF-8."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                out.append((n, raw.decode("utf-8").rstrip("\r\n")))
            except UnicodeDecodeError as e:
                if not skip_invalid:
                    raise InputError(f"{path}:{n}: invalid UTF-8 ({e.reason} at byte {e.start}); "
                                     "fix the file or pass --skip-invalid") from None
                print(f"warning: {path}:{n}: invalid UTF-8, line skipped", file=sys.stderr)
    return out


def read_texts(path: str | Path, skip_invalid: bool = False) -> list[str]:
    """Texts of a .txt (one a line), .csv (a `text` column) or .jsonl (a `text` field) file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    lines = _decoded_lines(path, skip_invalid)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        texts = []
        for n, line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not a JSON object: {e.msg}") from None
            if not isinstance(obj, dict) or "text" not in obj:
                raise InputError(f"{path}:{n}: expected an object with a \"text\" field")
            texts.append(str(obj["text"]))
        return texts
    if suffix == ".csv":
        rows = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
        if rows.fieldnames is None or "text" not in rows.fieldnames:
            raise InputError(f"{path}:1: no `text` column in the header ({rows.fieldnames})")
        return [r["text"] or "" for r in rows]
    return [line for _, line in lines]


def records(texts, results, probs, labels, all_scores: bool) -> list[dict]:
    out = []
    for text, res, p in zip(texts, results, probs):
        rec = {"text": text, "labels": [{"label": label, "score": round(s, 4)} for label, s in res]}
        if all_scores:
            rec["scores"] = {label: round(float(v), 4) for label, v in zip(labels, p)}
        out.append(rec)
    return out


def write_output(path: str | Path, recs: list[dict], labels: list[str], all_scores: bool) -> None:
    """.jsonl or .csv, written to a temp file and renamed: never a truncated file that looks complete."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            w = csv.writer(f)
            w.writerow(["text", "labels", *([f"score_{n}" for n in labels] if all_scores else [])])
            for r in recs:
                row = [r["text"], ";".join(x["label"] for x in r["labels"])]
                w.writerow(row + ([r["scores"][n] for n in labels] if all_scores else []))
        else:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def table(recs: list[dict], width: int = 60) -> str:
    lines = []
    for r in recs:
        text = r["text"].replace("\n", " ")
        text = text if len(text) <= width else text[: width - 1] + "…"
        labs = ", ".join(f"{x['label']} {x['score']:.2f}" for x in r["labels"]) or "(none above threshold)"
        lines.append(f"{text:<{width}}  {labs}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="emotion-predict", description="Label English texts with emotions.")
    ap.add_argument("--model-dir", default="models", help="a trained model directory (default: models)")
    ap.add_argument("--text", action="append", default=[], help="a text to label (repeatable)")
    ap.add_argument("--input", help="a .txt (one text a line), .csv or .jsonl (a `text` column/field) file")
    ap.add_argument("--output", help="write results to this .jsonl or .csv file")
    ap.add_argument("--all-scores", action="store_true", help="all 28 scores, not just labels above threshold")
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout even on a terminal")
    ap.add_argument("--thresholds", default="per_label", choices=["per_label", "global", "fixed"])
    ap.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"],
                    help="fp32 (default: the same scores on every machine) | auto (bf16 where the CPU or GPU "
                         "does it natively, faster) | bf16")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible) | cpu | cuda | cuda:N")
    ap.add_argument("--quantize", action="store_true",
                    help="int8 weights for the linear layers, fp32 activations, CPU only (for transformers)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip-invalid", action="store_true", help="skip (and warn about) invalid UTF-8 lines")
    args = ap.parse_args(argv)

    from .inference import EmotionClassifier, ThresholdsError
    from .models import ModelDirError

    try:
        texts = list(args.text)
        if args.input:
            texts += read_texts(args.input, args.skip_invalid)
        if not texts:
            ap.error("give --text TEXT (repeatable) or --input FILE")
        clf = EmotionClassifier.load(args.model_dir, strategy=args.thresholds, precision=args.precision,
                                     batch_size=args.batch_size, quantize=args.quantize, device=args.device)
    except (InputError, ModelDirError, ThresholdsError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if not clf.tuned:
        print(f"warning: {args.model_dir} has no valid tuned thresholds; predicting at 0.5 "
              "(run `dvc repro tune_thresholds`)", file=sys.stderr)
    probs = clf.predict_proba(texts, progress=bool(args.input))
    recs = records(texts, clf.decide(probs, args.all_scores), probs, clf.labels, args.all_scores)
    if args.output:
        write_output(args.output, recs, clf.labels, args.all_scores)
        print(f"{len(recs)} texts -> {args.output}", file=sys.stderr)
    elif args.json or not sys.stdout.isatty():
        for r in recs:
            print(json.dumps(r, ensure_ascii=False))
    else:
        print(table(recs))
