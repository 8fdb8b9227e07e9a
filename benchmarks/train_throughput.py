"""Training throughput: this project's loop vs the Hugging Face Trainer, side by side in one run.

Both fine-tune the same MiniLM (+ the two mask tokens) on the same GoEmotions train examples for one
epoch. The Trainer runs twice: with its defaults (batch 8, fp32, random batches padded to their
longest, its default optimizer and learning rate), and with its defaults but our batch size, which
isolates what the loop itself gains. Prints examples/s and both ratios.

    python benchmarks/train_throughput.py [--examples 2000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
import yaml

from emotion_classifier import text
from emotion_classifier.data import SPLITS, label_matrix, load_prepared, read_raw, subset
from emotion_classifier.params import load_params, validate
from emotion_classifier.train import fit, n_cores

ROOT = Path(__file__).resolve().parents[1]


def load_splits(n: int):
    prepared = ROOT / "data/prepared"
    try:
        splits, names = load_prepared(prepared)
    except Exception:  # no prepared data: read the raw files the same way prepare does
        splits, names = read_raw(ROOT / "data/raw/goemotions")
        from emotion_classifier.data import multi_hot

        for s in SPLITS:
            splits[s] = splits[s].assign(labels=list(multi_hot(splits[s]["label_ids"], len(names))))
    if len(splits["train"]) < n:
        raise SystemExit(f"need {n} train examples, {prepared} has {len(splits['train'])}: run `dvc repro prepare` "
                         "with data.max_examples: 0")
    return {"train": subset(splits["train"], n, 0), "dev": subset(splits["dev"], 200, 0)}, names


def ours(params, splits, names) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        r = fit(params, splits, names, model_dir=Path(tmp) / "m", metrics_path=None, live_dir=None,
                checkpoint_root=Path(tmp) / "ck", feature_cache=None)
    print(f"  ours: {r['epoch_time_s']:.1f} s, precision {r['precision']}, threads {r['threads']}")
    return r["train_examples_per_s"]


def hf_trainer(params, splits, names, batch_size: int | None) -> float:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    mp = params["model"]
    tok = text.load_tokenizer(mp["encoder"])
    model = AutoModelForSequenceClassification.from_pretrained(
        text.resolve_encoder(mp["encoder"]), num_labels=len(names), problem_type="multi_label_classification")
    model.resize_token_embeddings(len(tok))
    df = splits["train"]
    ds = Dataset.from_dict({"text": list(df["text"]), "labels": [list(r) for r in label_matrix(df)]})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=mp["max_length"]), batched=True,
                remove_columns=["text"])
    with tempfile.TemporaryDirectory() as tmp:
        bs = {"per_device_train_batch_size": batch_size} if batch_size else {}
        args = TrainingArguments(output_dir=tmp, num_train_epochs=1, report_to=[], save_strategy="no",
                                 logging_strategy="no", use_cpu=True, seed=params["seed"], disable_tqdm=True, **bs)
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
        t0 = time.time()
        trainer.train()
        elapsed = time.time() - t0
    print(f"  HF Trainer: {elapsed:.1f} s, batch {args.per_device_train_batch_size}, optimizer {args.optim}, "
          "random batches")
    return len(ds) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a param of our loop, e.g. -S model.transformer_finetune.encoder_dropout=0")
    args = ap.parse_args()
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    for kv in args.set:
        key, value = kv.split("=", 1)
        node = params
        *parents, leaf = key.split(".")
        for k in parents:
            node = node[k]
        node[leaf] = yaml.safe_load(value)
    params = validate(params)
    params["model"]["name"] = "transformer_finetune"
    params["train"].update(epochs=1, batch_size=args.batch_size, patience=0)
    splits, names = load_splits(args.examples)
    torch.set_num_threads(n_cores())
    print(f"{args.examples} GoEmotions train examples, MiniLM fine-tune, batch {args.batch_size}, "
          f"{n_cores()} cores, torch {torch.__version__}")
    a = ours(params, splits, names)
    b = hf_trainer(params, splits, names, None)
    c = hf_trainer(params, splits, names, args.batch_size)
    print(f"ours (batch {args.batch_size}):                  {a:8.1f} examples/s")
    print(f"HF Trainer, defaults:               {b:8.1f} examples/s")
    print(f"HF Trainer, defaults but batch {args.batch_size}:  {c:8.1f} examples/s")
    print(f"ratio vs Trainer defaults:          {a / b:8.2f}x")
    print(f"ratio vs Trainer at the same batch: {a / c:8.2f}x")


if __name__ == "__main__":
    main()
