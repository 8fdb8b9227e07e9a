"""Seeded re-runs per precision and thread count: are the trained weights bit-identical?

Each run is a fresh process (as `emotion-train` would be) fine-tuning the encoder on the same seeded
subset; prints the distinct weight hashes and dev losses per (precision, threads).

    python benchmarks/determinism.py [--runs 4] [--examples 300] [--epochs 2] [--precisions fp32,bf16] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA  # noqa: E402


def one_run(args) -> dict:
    from emotion_classifier import hardware
    from emotion_classifier.data import SPLITS, multi_hot, read_raw, subset
    from emotion_classifier.params import load_params, resolve, with_overrides
    from emotion_classifier.training.loop import fit

    hardware.n_cores = lambda: args.threads  # fit uses every core it may; pin the count under test
    params = with_overrides(load_params(ROOT / "params.yaml"), {
        "model.name": "transformer_finetune", "model.encoder": args.encoder, "train.epochs": args.epochs,
        "train.precision": args.precision, "train.device": "cpu"})
    splits, names = read_raw(Path(args.data))
    splits = {s: splits[s].assign(labels=list(multi_hot(splits[s]["label_ids"], len(names)))) for s in SPLITS}
    splits = {s: subset(splits[s], args.examples, 0) for s in ("train", "dev")}
    with tempfile.TemporaryDirectory() as tmp:
        r = fit(resolve(params), splits, names, model_dir=Path(tmp) / "m", metrics_path=None, live_dir=None,
                checkpoint_root=Path(tmp) / "ck", feature_cache=None)
        digest = hashlib.sha256((Path(tmp) / "m/model.safetensors").read_bytes()).hexdigest()[:12]
    return {"hash": digest, "dev_loss": r["dev_loss"], "cpu_kind": r["cpu_kind"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child run
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        args.threads = int(args.threads)
        print("RESULT " + json.dumps(one_run(args)))
        return {}
    table = {}
    with cpuload.watch():  # hashes do not depend on load, but a busy CPU is worth knowing of
        for precision in args.precisions.split(","):
            for threads in args.threads.split(","):
                runs = []
                for _ in range(args.runs):
                    cmd = [sys.executable, __file__, "--one", "--precision", precision, "--threads", threads,
                           "--examples", str(args.examples), "--epochs", str(args.epochs), "--encoder", args.encoder,
                           "--data", args.data]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                    runs.append(json.loads(out.split("RESULT ", 1)[1]))
                hashes = Counter(r["hash"] for r in runs)
                losses = sorted({r["dev_loss"] for r in runs})
                table[(precision, threads)] = hashes
                print(f"{precision} {threads} thread(s) on {runs[0]['cpu_kind']}: {len(hashes)} distinct weight "
                      f"hash(es) in {len(runs)} runs {dict(hashes)}; dev loss "
                      f"{', '.join(f'{v:.8f}' for v in losses)}", flush=True)
    return {k: dict(v) for k, v in table.items()}


if __name__ == "__main__":
    main()
