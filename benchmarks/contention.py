"""Load: how much a competing CPU-bound job slows a training, measured side by side in one run.

A BiLSTM (bilstm_maxpool at params.yaml's sizes) trains one epoch on N GoEmotions train examples, each run a
process of its own:

    alone                   every core this process may use (the default)
    beside a busy loop      the same threads, while one CPU-bound process runs (a second job on the machine)
    alone, 1 thread         $EMOTION_CLASSIFIER_THREADS=1
    beside, 1 thread        the same, beside the busy loop

Prints batches/s and each slowdown against `alone`; one competitor on C cores leaves a fair share of (C-1)/C of
the machine, so a fair slowdown is about C/(C-1) (2x on 2 cores) with every core, about 1x with 1 thread. The
CPU must be idle before it starts (--force runs anyway; the output says whether it was).

    python benchmarks/contention.py [--examples 1000] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from emotion_classifier import hardware
from emotion_classifier.params import load_params, resolve, with_overrides
from emotion_classifier.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA  # noqa: E402
from train_throughput import load_splits  # noqa: E402

BUSY_LOOP = "while True: pass"


def one(args) -> dict:
    """A training epoch in this process: batches/s and the threads it ran with."""
    settings = ["model.name=bilstm_maxpool", "train.epochs=1", "train.patience=0", *args.set]
    job = resolve(with_overrides(load_params(ROOT / "params.yaml"),
                                 {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in settings}))
    splits, names = load_splits(Path(args.data), args.examples)
    with tempfile.TemporaryDirectory() as tmp:
        r = fit(job, splits, names, model_dir=Path(tmp) / "m", metrics_path=None, live_dir=None,
                checkpoint_root=Path(tmp) / "ck", feature_cache=None)
    import torch

    batches = -(-args.examples // job.train.batch_size)
    return {"batches_per_s": batches / r["epoch_time_s"], "threads": torch.get_num_threads()}


def run(args, threads: int | None, competitors: int) -> dict:
    env = dict(os.environ)
    for var in hardware.THREADS_ENV:
        env.pop(var, None)
    if threads:
        env["EMOTION_CLASSIFIER_THREADS"] = str(threads)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(competitors)]
    try:
        cmd = [sys.executable, __file__, "--one", "--data", args.data, "--examples", str(args.examples),
               *[x for kv in args.set for x in ("--set", kv)]]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if r.returncode != 0:
        raise SystemExit(f"contention benchmark: a run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA), help="a folder with train.tsv, dev.tsv and emotions.txt")
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE params override (repeatable)")
    ap.add_argument("--force", action="store_true", help="run on a busy CPU (the output says it was contended)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args)))
        return {}
    cores = hardware.n_cores()
    with cpuload.watch(strict=not args.force) as load:  # its own competitor must be the only one
        rows = {"alone": run(args, None, 0), "beside a busy loop": run(args, None, 1),
                "alone, 1 thread": run(args, 1, 0), "beside, 1 thread": run(args, 1, 1)}
    contended = load["contended"]
    print(f"bilstm_maxpool, {args.examples} examples, {cores} cores ({hardware.cpu_kind()}: {hardware.cpu_name()})")
    base = rows["alone"]["batches_per_s"]
    for name, r in rows.items():
        print(f"  {name:20s} {r['threads']} thread(s): {r['batches_per_s']:6.2f} batches/s, "
              f"{base / r['batches_per_s']:.2f}x slower than alone")
    fair = cores / max(1, cores - 1)
    print(f"  a fair share beside one competitor: {fair:.2f}x with every core, about 1x with 1 thread")
    return {"rows": rows, "contended": contended, "cores": cores}


if __name__ == "__main__":
    main()
