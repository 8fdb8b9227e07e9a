"""Inference speed: EmotionClassifier.predict_proba vs transformers.pipeline, side by side in one run.

The same test sentences and the same fine-tuned MiniLM: ours batches by sorted length under
torch.inference_mode, in fp32, in bf16 (where the CPU or GPU does it natively, or with --bf16) and
int8-quantized (CPU); the ONNX export under onnxruntime in fp32 and int8 (`--backend onnx`); the pipeline
runs with its defaults on the exported directory (`emotion-export`). For a mean-pooled model, which has no
standard head, the pipeline's speed is timed on a fresh pooler model of the same encoder (speed does not
depend on the weights) and no score difference is printed. Prints sentences/s, ratios, largest score
differences.

    python benchmarks/inference.py [--model-dir models] [--sentences 2000] [--device auto] [--bf16]

Without `--model-dir`, a fresh fine-tune model (BERT pooler head, so it exports whatever params.yaml
says) is built from `--encoder`: speed does not depend on the weights' values, only on the architecture.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emotion_classifier import EmotionClassifier, hardware, models, text
from emotion_classifier.data import read_split
from emotion_classifier.errors import UserError
from emotion_classifier.export import export
from emotion_classifier.params import load_params

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/raw/goemotions"  # after `dvc pull`; ../shared/goemotions otherwise
if not DATA.exists() and (ROOT.parent / "shared/goemotions").exists():
    DATA = ROOT.parent / "shared/goemotions"


def fresh_model_dir(out: Path, encoder: str, labels: list[str], name: str, **arch) -> Path:
    """An untrained `name` model with params.yaml's settings but `arch`, saved to `out` (the benchmarks time
    architectures; speed does not depend on the weights' values)."""
    model_params = copy.deepcopy(load_params(ROOT / "params.yaml")["model"])
    model_params["encoder"] = encoder
    model_params[name].update(arch)
    tok = text.load_tokenizer(encoder)
    model, cfg = models.build(name, model_params, tok, labels)
    models.save(model, cfg, tok, out)
    return out


def timed(fn, texts) -> tuple[float, np.ndarray]:
    fn(texts[:64])  # warm-up: first-call allocations and kernel choices
    t0 = time.perf_counter()
    out = fn(texts)
    return len(texts) / (time.perf_counter() - t0), out


def pipeline_scores(hf_dir: Path, texts, labels, max_length: int, device) -> tuple[float, np.ndarray]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(hf_dir), top_k=None, device=device)
    speed, res = timed(lambda t: pipe(t, truncation=True, max_length=max_length), texts)
    order = {n: i for i, n in enumerate(labels)}
    return speed, np.array([[d["score"] for d in sorted(r, key=lambda d: order[d["label"]])] for r in res])


def onnx_rows(model_dir: Path, texts, p_fp32: np.ndarray, rows: dict, diffs: dict) -> tuple[dict, dict]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime rows skipped: pip install -e '.[onnx]'")
        return rows, diffs
    for name, int8 in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
        clf = EmotionClassifier.load(model_dir, "fixed", backend="onnx", quantize=int8, device="cpu")
        rows[name], p = timed(clf.predict_proba, texts)
        diffs[f"{name} vs fp32"] = np.abs(p - p_fp32).max()
    return rows, diffs


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="a transformer_finetune model directory (default: a fresh one)")
    ap.add_argument("--encoder", default=load_params(ROOT / "params.yaml")["model"]["encoder"],
                    help="the encoder of the fresh model (default: params.yaml's)")
    ap.add_argument("--data", default=str(DATA), help="a folder with test.tsv and emotions.txt")
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--bf16", action="store_true", help="time bf16 even where it is emulated (slow)")
    args = ap.parse_args(argv)
    hardware.use_all_cores()
    device = hardware.resolve_device(args.device)
    labels = (Path(args.data) / "emotions.txt").read_text(encoding="utf-8").split()
    texts = list(read_split(Path(args.data) / "test.tsv", len(labels))["text"][: args.sentences])
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else fresh_model_dir(
            Path(tmp) / "m", args.encoder, labels, "transformer_finetune", pooling="pooler")  # the exportable head
        clf = EmotionClassifier.load(model_dir, "fixed", precision="fp32", device=args.device)
        rows["fp32"], p_fp32 = timed(clf.predict_proba, texts)
        diffs = {}
        if args.bf16 or hardware.native_bf16(device):
            bf16 = EmotionClassifier.load(model_dir, "fixed", precision="bf16", device=args.device)
            rows["bf16"], p = timed(bf16.predict_proba, texts)
            diffs["bf16 vs fp32"] = np.abs(p - p_fp32).max()
        if device.type == "cpu":
            quant = EmotionClassifier.load(model_dir, "fixed", quantize=True, device="cpu")
            rows["int8 (--quantize)"], p = timed(quant.predict_proba, texts)
            diffs["int8 vs fp32"] = np.abs(p - p_fp32).max()
            rows, diffs = onnx_rows(model_dir, texts, p_fp32, rows, diffs)
        try:
            hf_dir = export(model_dir, Path(tmp) / "hf")
        except UserError:  # a mean-pooled fine-tune has no standard head: time the pipeline on a pooler twin
            print("transformers.pipeline: timed on a fresh pooler model of the same encoder (no score comparison)")
            twin = fresh_model_dir(Path(tmp) / "twin", clf.config["encoder"], labels, "transformer_finetune",
                                   pooling="pooler")
            rows["pipeline"], _ = pipeline_scores(export(twin, Path(tmp) / "hf"), texts, clf.labels, clf.max_length,
                                                  device)
        else:
            rows["pipeline"], p = pipeline_scores(hf_dir, texts, clf.labels, clf.max_length, device)
            diffs["fp32 vs pipeline"] = np.abs(p - p_fp32).max()
    hw = hardware.describe(device, "fp32")
    print(f"{len(texts)} test sentences, MiniLM fine-tune, device {hw['device']} ({hw.get('gpu') or hw['cpu_kind']}: "
          f"{hardware.cpu_name()}), {hw['threads']} threads, torch {torch.__version__}")
    for name, speed in rows.items():
        label = "transformers.pipeline (defaults)" if name == "pipeline" else f"EmotionClassifier {name}"
        ratio = f"  {speed / rows['pipeline']:6.2f}x the pipeline" if "pipeline" in rows and name != "pipeline" else ""
        print(f"{label:<40} {speed:9.1f} sentences/s{ratio}")
    for name, d in diffs.items():
        print(f"max |score difference| {name + ':':<20} {d:.2e}")
    return {"speed": rows, "max_diff": diffs}


if __name__ == "__main__":
    main()
