"""Training throughput: this project's loop vs the Hugging Face Trainer, side by side in one run.

Both fine-tune the same MiniLM (+ the two mask tokens) on the same GoEmotions train examples for one
epoch. The Trainer runs twice: with its defaults (batch 8, fp32, random batches padded to their
longest, its default optimizer and learning rate), and with its defaults but our batch size, which
isolates what the loop itself gains. Prints examples/s and both ratios. `--vs KEY=VALUE` runs our loop
once more with that override and prints what it costs (e.g. `--vs train.rdrop_alpha=1 --no-trainer`).

    python benchmarks/train_throughput.py [--examples 2000] [--batch-size 32] [-S train.precision=fp32]

Our loop runs with params.yaml's train.precision and train.device (auto: bf16 where native); the
Trainer in fp32 on the CPU, as its defaults do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from emotion_classifier import hardware
from emotion_classifier.data import SPLITS, label_matrix, multi_hot, read_raw, subset
from emotion_classifier.encoder import load_tokenizer, resolve_encoder
from emotion_classifier.params import Params, load_params, resolve, with_overrides
from emotion_classifier.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA  # noqa: E402


def load_splits(raw_dir: Path, n: int):
    splits, names = read_raw(raw_dir)  # read and validated the same way prepare does
    for s in SPLITS:
        splits[s] = splits[s].assign(labels=list(multi_hot(splits[s]["label_ids"], len(names))))
    if len(splits["train"]) < n:
        raise SystemExit(f"need {n} train examples, {raw_dir} has {len(splits['train'])}")
    return {"train": subset(splits["train"], n, 0), "dev": subset(splits["dev"], min(200, n), 0)}, names


def ours(params, splits, names) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        r = fit(resolve(params), splits, names, model_dir=Path(tmp) / "m", metrics_path=None, live_dir=None,
                checkpoint_root=Path(tmp) / "ck", feature_cache=None)
    print(f"  ours: {r['epoch_time_s']:.1f} s, device {r['device']}, precision {r['precision']}, "
          f"threads {torch.get_num_threads()}")
    return r["train_examples_per_s"]


def hf_trainer(params, splits, names, batch_size: int | None) -> float:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    mp = params.model
    tok = load_tokenizer(mp.encoder)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_encoder(mp.encoder), num_labels=len(names), problem_type="multi_label_classification")
    model.resize_token_embeddings(len(tok))
    df = splits["train"]
    ds = Dataset.from_dict({"text": list(df["text"]), "labels": [list(r) for r in label_matrix(df)]})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=mp.max_length), batched=True,
                remove_columns=["text"])
    on_cpu = hardware.resolve_device(params.train.device).type == "cpu"  # the device ours ran on
    with tempfile.TemporaryDirectory() as tmp:
        bs = {"per_device_train_batch_size": batch_size} if batch_size else {}
        args = TrainingArguments(output_dir=tmp, num_train_epochs=1, report_to=[], save_strategy="no",
                                 logging_strategy="no", use_cpu=on_cpu, seed=params.seed, disable_tqdm=True, **bs)
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
        t0 = time.time()
        trainer.train()
        elapsed = time.time() - t0
    print(f"  HF Trainer: {elapsed:.1f} s, batch {args.per_device_train_batch_size}, optimizer {args.optim}, "
          "random batches")
    return len(ds) / elapsed


def override(params: Params, settings: list[str]) -> Params:
    """params with `KEY=VALUE` overrides, as `dvc exp run -S` takes them."""
    return with_overrides(params, {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in settings})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--data", default=str(DATA), help="a folder with {train,dev,test}.tsv and emotions.txt")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a param of our loop, e.g. -S model.transformer_finetune.encoder_dropout=0")
    ap.add_argument("--vs", action="append", default=[], metavar="KEY=VALUE",
                    help="run our loop again with this override too, e.g. --vs train.rdrop_alpha=1")
    ap.add_argument("--no-trainer", action="store_true", help="skip the two HF Trainer runs")
    ap.add_argument("--strict", action="store_true", help="refuse to run unless the CPU is idle")
    args = ap.parse_args(argv)
    params = override(load_params(ROOT / "params.yaml"), args.set)
    params = with_overrides(params, {"model.name": "transformer_finetune", "train.epochs": 1,
                                     "train.batch_size": args.batch_size, "train.patience": 0})
    splits, names = load_splits(Path(args.data), args.examples)
    hardware.use_threads()
    print(f"{args.examples} GoEmotions train examples, fine-tune of {params.model.encoder}, batch "
          f"{args.batch_size}, {hardware.n_cores()} cores ({hardware.cpu_kind()}: {hardware.cpu_name()}), "
          f"torch {torch.__version__}")
    with cpuload.watch(args.strict) as load:
        out = {"ours": ours(params, splits, names)}
        if args.vs:
            out["ours_vs"] = ours(override(params, args.vs), splits, names)
        if not args.no_trainer:
            out["trainer_defaults"] = hf_trainer(params, splits, names, None)
            out["trainer_same_batch"] = hf_trainer(params, splits, names, args.batch_size)
    a = out["ours"]
    out["contended"] = load["contended"]
    print(f"ours (batch {args.batch_size}):                  {a:8.1f} examples/s")
    if args.vs:
        v = out["ours_vs"]
        print(f"ours with {' '.join(args.vs)}: {v:8.1f} examples/s, {a / v:.2f}x the time per epoch")
    if args.no_trainer:
        return out
    b, c = out["trainer_defaults"], out["trainer_same_batch"]
    print(f"HF Trainer, defaults:               {b:8.1f} examples/s")
    print(f"HF Trainer, defaults but batch {args.batch_size}:  {c:8.1f} examples/s")
    print(f"ratio vs Trainer defaults:          {a / b:8.2f}x")
    print(f"ratio vs Trainer at the same batch: {a / c:8.2f}x")
    return out


if __name__ == "__main__":
    main()
