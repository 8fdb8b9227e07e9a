"""Inference speed: EmotionClassifier.predict_proba vs transformers.pipeline, side by side in one run.

The same 2,000 GoEmotions test sentences and the same fine-tuned MiniLM: ours batches by sorted
length under torch.inference_mode; the pipeline runs with its defaults on the exported directory
(`emotion-export`). Prints sentences/s, the ratio, and the ratio with --quantize (int8 dynamic).

    python benchmarks/inference.py [--model-dir models] [--sentences 2000]

Without a fine-tuned `--model-dir`, a fresh one is built from the bundled encoder: speed does not
depend on the values of the weights, only on the architecture.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emotion_classifier import EmotionClassifier, models, text
from emotion_classifier.data import read_split
from emotion_classifier.export import export
from emotion_classifier.params import load_params
from emotion_classifier.train import n_cores

ROOT = Path(__file__).resolve().parents[1]


def fresh_finetune_dir(out: Path) -> Path:
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["model"]["name"] = "transformer_finetune"
    tok = text.load_tokenizer(params["model"]["encoder"])
    names = (ROOT / "data/raw/goemotions/emotions.txt").read_text().split()
    model, cfg = models.build("transformer_finetune", params["model"], tok, names)
    models.save(model, cfg, tok, out)
    return out


def timed(fn, texts) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(texts)
    return len(texts) / (time.perf_counter() - t0), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="a transformer_finetune model directory (default: a fresh one)")
    ap.add_argument("--sentences", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(n_cores())
    texts = list(read_split(ROOT / "data/raw/goemotions/test.tsv", 28)["text"][: args.sentences])
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else fresh_finetune_dir(Path(tmp) / "models")
        hf_dir = export(model_dir, Path(tmp) / "hf")
        from transformers import pipeline

        clf = EmotionClassifier.load(model_dir)
        clf.predict_proba(texts[:64])  # warm-up, as the pipeline gets below
        ours, p_ours = timed(clf.predict_proba, texts)
        quant = EmotionClassifier.load(model_dir, quantize=True)
        quant.predict_proba(texts[:64])
        ours_q, p_q = timed(quant.predict_proba, texts)
        pipe = pipeline("text-classification", model=str(hf_dir), top_k=None, device="cpu")
        pipe(texts[:8])
        theirs, res = timed(lambda t: pipe(t, truncation=True, max_length=clf.max_length), texts)
    order = {n: i for i, n in enumerate(clf.labels)}
    p_theirs = np.array([[d["score"] for d in sorted(r, key=lambda d: order[d["label"]])] for r in res])
    print(f"{len(texts)} test sentences, MiniLM fine-tune, {n_cores()} cores, torch {torch.__version__}, "
          f"precision {clf.precision}")
    print(f"EmotionClassifier.predict_proba:              {ours:8.1f} sentences/s")
    print(f"EmotionClassifier.predict_proba, --quantize:  {ours_q:8.1f} sentences/s")
    print(f"transformers.pipeline (defaults):             {theirs:8.1f} sentences/s")
    print(f"max |score difference| ours vs pipeline:      {np.abs(p_ours - p_theirs).max():.2e}")
    print(f"max |score difference| quantized vs fp32:     {np.abs(p_q - p_ours).max():.2e}")
    print(f"ratio:                {ours / theirs:8.2f}x")
    print(f"ratio with --quantize: {ours_q / theirs:8.2f}x")


if __name__ == "__main__":
    main()
