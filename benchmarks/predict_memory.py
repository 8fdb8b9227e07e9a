"""emotion-predict's peak memory and speed against input size: streaming keeps memory flat.

Writes inputs of each size by repeating the GoEmotions test texts, runs `emotion-predict --input ...
--output ...` on each in a fresh process, and prints peak RSS (the child's ru_maxrss, the figure
`/usr/bin/time -v` reports as "Maximum resident set size"), seconds and sentences/s, side by side.

    python benchmarks/predict_memory.py [--model-dir models] [--lines 10000,1000000]

Without --model-dir a fresh `bilstm_maxpool` model is built from params.yaml (fast enough for a
million lines; memory is about the input and output, not the weights), scored at fixed 0.5 thresholds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emotion_classifier.data import read_split
from emotion_classifier.encoder import resolve_encoder
from emotion_classifier.params import load_params

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA, fresh_model_dir  # noqa: E402


def fresh_model(out: Path, encoder: str, labels: list[str]) -> Path:
    from transformers import AutoConfig

    hidden = AutoConfig.from_pretrained(resolve_encoder(encoder)).hidden_size
    # embeddings initialised from the encoder's: their width is its hidden size
    return fresh_model_dir(out, encoder, labels, "bilstm_maxpool", embedding_dim=hidden)


def measure(model_dir: Path, src: Path, out: Path, thresholds: str) -> dict:
    """Peak RSS of an `emotion-predict` process, as `/usr/bin/time` reports it. (The child's own
    ru_maxrss seen from here would not do: Linux carries this process's RSS at fork into it.)"""
    cmd = [sys.executable, "-c", "from emotion_classifier.predict import main; main()", "--model-dir", str(model_dir),
           "--input", str(src), "--output", str(out), "--thresholds", thresholds]
    if not os.path.exists(TIME):
        raise SystemExit(f"{TIME} not found: apt-get install time")
    t0 = time.perf_counter()
    r = subprocess.run([TIME, "-f", "peak_rss_kb=%M", *cmd], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"emotion-predict failed: {r.stderr[-2000:]}")
    kb = int(r.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0])
    return {"peak_rss_mb": kb / 1024, "seconds": seconds}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="a trained model directory (default: a fresh bilstm_maxpool)")
    ap.add_argument("--encoder", default=load_params(ROOT / "params.yaml").model.encoder)
    ap.add_argument("--data", default=str(DATA), help="a folder with test.tsv and emotions.txt")
    ap.add_argument("--lines", default="10000,1000000")
    args = ap.parse_args(argv)
    labels = (Path(args.data) / "emotions.txt").read_text(encoding="utf-8").split()
    texts = list(read_split(Path(args.data) / "test.tsv", len(labels))["text"])
    rows = {}
    with tempfile.TemporaryDirectory() as tmp, cpuload.watch():
        tmp = Path(tmp)
        model_dir = Path(args.model_dir) if args.model_dir else fresh_model(tmp / "m", args.encoder, labels)
        thresholds = "per_label" if (model_dir / "thresholds.json").exists() else "fixed"
        for n in map(int, args.lines.split(",")):
            src = tmp / f"in_{n}.txt"
            with open(src, "w", encoding="utf-8") as f:
                for i in range(n):
                    f.write(texts[i % len(texts)] + "\n")
            rows[n] = measure(model_dir, src, tmp / "out.jsonl", thresholds)
            rows[n]["sentences_per_s"] = n / rows[n]["seconds"]
            mb_in, mb_out = src.stat().st_size / 2**20, (tmp / "out.jsonl").stat().st_size / 2**20
            r = rows[n]
            print(f"{n:>9,} lines ({mb_in:6.1f} MB in, {mb_out:6.1f} MB out): peak RSS {r['peak_rss_mb']:7.1f} MB, "
                  f"{r['seconds']:7.1f} s, {r['sentences_per_s']:7.0f} sentences/s", flush=True)
            src.unlink()
    small, large = min(rows), max(rows)
    print(f"largest vs smallest: RSS x{rows[large]['peak_rss_mb'] / rows[small]['peak_rss_mb']:.2f}, speed per "
          f"sentence x{rows[large]['sentences_per_s'] / rows[small]['sentences_per_s']:.2f} (model {model_dir.name}, "
          f"thresholds {thresholds})")
    return rows


if __name__ == "__main__":
    main()
