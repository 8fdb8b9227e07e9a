"""int8 that keeps accuracy: onnxruntime's dynamic quantization under several policies, each scored on dev only
beside fp32, side by side in one run. Chooses onnx_backend.INT8 (what `--quantize` does with `--backend onnx`).

For a model directory (an ensemble's first model: models/ itself), every row scores the dev split:

    torch fp32              the reference: its per-label thresholds are tuned on these dev scores
    onnx fp32 (traced)      the graph as torch exports it
    onnx fp32 (fused)       onnxruntime's transformer fusions (what the onnx backend serves)
    onnx int8 <policy>      per tensor or per channel, with the classifier and the last blocks kept fp32 or not

Prints sentences/s, the ratio to torch fp32, and dev macro F1 with the fp32 thresholds (what a user of a tuned model
gets) and with thresholds re-tuned on the row's own dev scores; the CPU must be idle (--strict to insist).

    python benchmarks/quantization.py --model-dir models [--sentences 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emotion_classifier import hardware, onnx_backend
from emotion_classifier.batching import TokenData, predict_logits
from emotion_classifier.data import multi_hot, read_split
from emotion_classifier.encoder import bounded
from emotion_classifier.metrics import macro_f1
from emotion_classifier.model_dir.model import load
from emotion_classifier.thresholds import Policy, apply

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA  # noqa: E402

POLICIES = {
    "per tensor (before)": onnx_backend.Int8(per_channel=False, keep_classifier=False),
    "per channel": onnx_backend.Int8(per_channel=True, keep_classifier=False),
    "per channel, classifier fp32": onnx_backend.Int8(per_channel=True, keep_classifier=True),
    "per channel, classifier + last block fp32": onnx_backend.Int8(per_channel=True, keep_last_blocks=1),
    "per channel, classifier + last 2 blocks fp32": onnx_backend.Int8(per_channel=True, keep_last_blocks=2),
}


def scorer(module, tok, max_length: int, batch_size: int = 64):
    def probs(texts) -> np.ndarray:
        texts = [bounded(t, max_length) for t in texts]
        data = TokenData(tok(texts, truncation=True, max_length=max_length)["input_ids"], tok.pad_token_id)
        return 1 / (1 + np.exp(-predict_logits(module, data, batch_size, torch.device("cpu"), "fp32")))
    return probs


def timed(fn, texts) -> tuple[float, np.ndarray]:
    fn(texts[:64])
    t0 = time.perf_counter()
    out = fn(texts)
    return len(texts) / (time.perf_counter() - t0), out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default="models")
    ap.add_argument("--data", default=str(DATA), help="a folder with dev.tsv and emotions.txt")
    ap.add_argument("--sentences", type=int, default=0, help="dev sentences (0: all)")
    ap.add_argument("--strict", action="store_true", help="refuse to run unless the CPU is idle")
    ap.add_argument("--policies", help="comma-separated names of POLICIES to try (default: all)")
    args = ap.parse_args(argv)
    policies = {n: POLICIES[n] for n in args.policies.split(",")} if args.policies else POLICIES
    threads = hardware.use_threads()
    model, cfg, tok = load(args.model_dir, "cpu")
    labels = cfg["labels"]
    dev = read_split(Path(args.data) / "dev.tsv", len(labels))
    dev = dev.head(args.sentences) if args.sentences else dev
    texts, y = list(dev["text"]), multi_hot(dev["label_ids"], len(labels))
    policy = Policy()  # thresholds.* defaults: micro F1 for the global one, per label where 5+ positives
    rows = {}
    with tempfile.TemporaryDirectory() as tmp, cpuload.watch(args.strict) as cpu_load:
        graphs = {"onnx fp32 (traced)": onnx_backend.write(model, tok, Path(tmp) / "traced.onnx"),
                  "onnx fp32 (fused)": onnx_backend.inference_graph(model, tok, Path(tmp) / "fused.onnx")}
        graphs |= {f"onnx int8, {name}": onnx_backend.inference_graph(model, tok, Path(tmp) / f"q{i}.onnx", True, p)
                   for i, (name, p) in enumerate(policies.items())}
        rows["torch fp32"] = timed(scorer(model.eval(), tok, cfg["max_length"]), texts)
        for name, path in graphs.items():
            rows[name] = timed(scorer(onnx_backend.OrtModel(path, threads), tok, cfg["max_length"]), texts)
    ref_speed, ref = rows["torch fp32"]
    thresholds = policy.thresholds(y, ref)
    base = macro_f1(y, apply(ref, thresholds))
    out = {}
    print(f"{len(texts)} dev sentences, {cfg['name']} from {args.model_dir}, {threads} threads "
          f"({hardware.cpu_kind()}: {hardware.cpu_name()}); dev macro F1 with per-label thresholds tuned on torch "
          f"fp32's dev scores, and re-tuned on each row's own")
    for name, (speed, probs) in rows.items():
        kept = macro_f1(y, apply(probs, thresholds))
        own = macro_f1(y, apply(probs, policy.thresholds(y, probs)))
        out[name] = {"sentences_per_s": speed, "dev_macro_f1": kept, "dev_macro_f1_retuned": own,
                     "max_abs_diff": float(np.abs(probs - ref).max())}
        print(f"{name:<50} {speed:8.1f}/s {speed / ref_speed:5.2f}x  F1 {kept:.4f} ({kept - base:+.4f})  "
              f"re-tuned {own:.4f} ({own - base:+.4f})  max |diff| {out[name]['max_abs_diff']:.1e}")
    return {"rows": out, "contended": cpu_load["contended"]}


if __name__ == "__main__":
    main()
