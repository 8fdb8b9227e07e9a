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
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emotion_classifier import EmotionClassifier, hardware
from emotion_classifier.data import read_split
from emotion_classifier.encoder import load_tokenizer
from emotion_classifier.errors import UserError
from emotion_classifier.export import export
from emotion_classifier.model_dir.model import build, save
from emotion_classifier.params import load_params, resolve, with_overrides

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402

DATA = ROOT / "data/raw/goemotions"  # after `dvc pull`; ../shared/goemotions otherwise
if not DATA.exists() and (ROOT.parent / "shared/goemotions").exists():
    DATA = ROOT.parent / "shared/goemotions"


def fresh_model_dir(out: Path, encoder: str, labels: list[str], name: str, **arch) -> Path:
    """An untrained `name` model with params.yaml's settings but `arch`, saved to `out` (the benchmarks time
    architectures; speed does not depend on the weights' values)."""
    params = with_overrides(load_params(ROOT / "params.yaml"), {
        "model.name": name, "model.encoder": encoder, **{f"model.{name}.{k}": v for k, v in arch.items()}})
    tok = load_tokenizer(encoder)
    model, cfg = build(resolve(params).model, tok, labels)
    save(model, cfg, tok, out)
    return out


def timed(fn, texts) -> tuple[float, np.ndarray]:
    fn(texts[:64])  # warm-up: first-call allocations and kernel choices
    t0 = time.perf_counter()
    out = fn(texts)
    return len(texts) / (time.perf_counter() - t0), out


def latency(fn, texts, n: int = 200) -> dict[str, float]:
    """One sentence per call, as a server answering one user at a time sees it: p50 and p99 in milliseconds."""
    fn(texts[:1])
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        fn([t])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def thread_sweep(model_dir: Path, texts) -> dict[str, dict[int, float]]:
    """Sentences/s at the default batch with 1, 2, ... threads (up to this process's cores): torch fp32 and the fused
    onnxruntime graph (which fixes its threads when loaded, so it is loaded again for each count)."""
    out = {"fp32": {}, "onnxruntime fp32": {}}
    for n in range(1, hardware.n_cores() + 1):
        hardware.use_threads(n)
        out["fp32"][n] = timed(EmotionClassifier.load(model_dir, "fixed", device="cpu").predict_proba, texts)[0]
        onnx = EmotionClassifier.load(model_dir, "fixed", backend="onnx", device="cpu")
        out["onnxruntime fp32"][n] = timed(onnx.predict_proba, texts)[0]
    hardware.use_threads(hardware.threads())
    return out


def pipeline_scores(hf_dir: Path, texts, labels, max_length: int, device) -> tuple[float, np.ndarray]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(hf_dir), top_k=None, device=device)
    speed, res = timed(lambda t: pipe(t, truncation=True, max_length=max_length), texts)
    order = {n: i for i, n in enumerate(labels)}
    return speed, np.array([[d["score"] for d in sorted(r, key=lambda d: order[d["label"]])] for r in res])


def backends(model_dir: Path, device: torch.device, bf16: bool) -> dict[str, EmotionClassifier]:
    """Every way this package can score: torch fp32, bf16 (where native, or asked), torch int8 and onnxruntime
    fp32 / int8 (CPU)."""
    out = {"fp32": EmotionClassifier.load(model_dir, "fixed", precision="fp32", device=str(device))}
    if bf16 or hardware.native_bf16(device):
        out["bf16"] = EmotionClassifier.load(model_dir, "fixed", precision="bf16", device=str(device))
    if device.type != "cpu":
        return out
    out["int8 (--quantize)"] = EmotionClassifier.load(model_dir, "fixed", quantize=True, device="cpu")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime rows skipped: pip install -e '.[onnx]'")
        return out
    out["onnxruntime fp32"] = EmotionClassifier.load(model_dir, "fixed", backend="onnx", device="cpu")
    out["onnxruntime int8"] = EmotionClassifier.load(model_dir, "fixed", backend="onnx", quantize=True, device="cpu")
    return out


def dev_macro_f1(model_dir: Path, data: Path, labels: list[str], clfs: dict) -> dict[str, float]:
    """Dev macro F1 of each backend with the model's tuned per-label thresholds: those tuned on fp32 scores, and for
    onnxruntime int8 those tuned on its own (tune_thresholds writes both)."""
    from emotion_classifier.data import multi_hot
    from emotion_classifier.metrics import macro_f1
    from emotion_classifier.model_dir import read_tuned, strategy_thresholds

    dev = read_split(data / "dev.tsv", len(labels))
    y = multi_hot(dev["label_ids"], len(labels))
    tuned = read_tuned(model_dir, labels)
    return {name: macro_f1(y, clf.predict_proba(list(dev["text"])) >= strategy_thresholds(
        tuned, "per_label", model_dir, onnx_int8=name == "onnxruntime int8")) for name, clf in clfs.items()}


def pipeline_row(model_dir: Path, tmp: Path, clf: EmotionClassifier, texts, labels, device):
    """The pipeline's speed (and scores) on the exported model; a mean-pooled fine-tune has no standard head,
    so its pipeline runs on a fresh pooler twin of the same encoder (speed only)."""
    try:
        hf_dir = export(model_dir, tmp / "hf")
    except UserError:
        print("transformers.pipeline: timed on a fresh pooler model of the same encoder (no score comparison)")
        twin = fresh_model_dir(tmp / "twin", clf.config["encoder"], labels, "transformer_finetune", pooling="pooler")
        return pipeline_scores(export(twin, tmp / "hf"), texts, clf.labels, clf.max_length, device)[0], None
    return pipeline_scores(hf_dir, texts, clf.labels, clf.max_length, device)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="a transformer_finetune model directory (default: a fresh one)")
    ap.add_argument("--encoder", default=load_params(ROOT / "params.yaml").model.encoder,
                    help="the encoder of the fresh model (default: params.yaml's)")
    ap.add_argument("--data", default=str(DATA), help="a folder with test.tsv (dev.tsv) and emotions.txt")
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--bf16", action="store_true", help="time bf16 even where it is emulated (slow)")
    ap.add_argument("--dev-f1", action="store_true", help="also each backend's dev macro F1 (tuned thresholds)")
    ap.add_argument("--strict", action="store_true", help="refuse to run unless the CPU is idle")
    ap.add_argument("--latency", action="store_true", help="also p50/p99 latency at batch 1 and a thread sweep (CPU)")
    args = ap.parse_args(argv)
    hardware.use_threads()
    device = hardware.resolve_device(args.device)
    data = Path(args.data)
    labels = (data / "emotions.txt").read_text(encoding="utf-8").split()
    texts = list(read_split(data / "test.tsv", len(labels))["text"][: args.sentences])
    with tempfile.TemporaryDirectory() as tmp, cpuload.watch(args.strict) as load:
        model_dir = Path(args.model_dir) if args.model_dir else fresh_model_dir(
            Path(tmp) / "m", args.encoder, labels, "transformer_finetune", pooling="pooler")  # the exportable head
        clfs = backends(model_dir, device, args.bf16)
        speed, scores = {}, {}
        for name, clf in clfs.items():
            speed[name], scores[name] = timed(clf.predict_proba, texts)
        diffs = {f"{name} vs fp32": float(np.abs(p - scores["fp32"]).max()) for name, p in scores.items()
                 if name != "fp32"}
        speed["pipeline"], p = pipeline_row(model_dir, Path(tmp), clfs["fp32"], texts, labels, device)
        if p is not None:
            diffs["fp32 vs pipeline"] = float(np.abs(p - scores["fp32"]).max())
        dev = dev_macro_f1(model_dir, data, labels, clfs) if args.dev_f1 else {}
        lat = {name: latency(clf.predict_proba, texts) for name, clf in clfs.items()} if args.latency else {}
        sweep = thread_sweep(model_dir, texts) if args.latency and device.type == "cpu" else {}
    print_table(device, len(texts), speed, diffs, dev)
    for name, t in lat.items():
        print(f"batch 1, {name:<28} p50 {t['p50_ms']:7.2f} ms  p99 {t['p99_ms']:7.2f} ms")
    for name, rates in sweep.items():
        print(f"threads, {name:<27} " + "  ".join(f"{n}: {r:7.1f}/s" for n, r in rates.items()))
    return {"speed": speed, "max_diff": diffs, "dev_macro_f1": dev, "latency": lat, "threads": sweep,
            "contended": load["contended"]}


def print_table(device, n: int, speed: dict, diffs: dict, dev: dict) -> None:
    hw = hardware.describe(device, "fp32")
    print(f"{n} test sentences, MiniLM fine-tune, device {hw['device']} ({hw.get('gpu') or hw['cpu_kind']}: "
          f"{hardware.cpu_name()}), {hw['threads']} threads, torch {torch.__version__}")
    for name, rate in speed.items():
        label = "transformers.pipeline (defaults)" if name == "pipeline" else f"EmotionClassifier {name}"
        ratio = f"  {rate / speed['pipeline']:6.2f}x the pipeline" if name != "pipeline" else ""
        f1 = f"  dev macro F1 {dev[name]:.4f} ({dev[name] - dev['fp32']:+.4f})" if name in dev else ""
        print(f"{label:<40} {rate:9.1f} sentences/s{ratio}{f1}")
    for name, d in diffs.items():
        print(f"max |score difference| {name + ':':<26} {d:.2e}")


if __name__ == "__main__":
    main()
