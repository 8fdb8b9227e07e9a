"""The model options `emotion-predict` and `emotion-serve` share: one definition of the flags and of how a model
directory becomes an EmotionClassifier (tuned thresholds required, the backend, the thread count)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BACKENDS = ("auto", "torch", "onnx")


def positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return n


def add_model_options(ap: argparse.ArgumentParser, backend: str = "torch") -> None:
    """--model-dir, --thresholds, --precision, --device, --quantize, --backend (default `backend`), --taxonomy,
    --batch-size, --threads."""
    ap.add_argument("--model-dir", default="models", help="a trained model directory (default: models)")
    ap.add_argument("--thresholds", default="per_label", choices=["per_label", "global", "fixed"],
                    help="tuned per label or globally on dev (needs models/thresholds.json), or fixed 0.5")
    ap.add_argument("--precision", default="fp32", choices=["auto", "bf16", "fp32"],
                    help="fp32 (default: the same scores on every machine) | auto (bf16 where the CPU or GPU "
                         "does it natively, faster) | bf16")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible) | cpu | cuda | cuda:N")
    ap.add_argument("--quantize", action="store_true",
                    help="int8 weights for the linear layers, fp32 activations, CPU only (for transformers); "
                         "with --backend onnx, onnxruntime's int8 dynamic quantization")
    ap.add_argument("--backend", default=backend, choices=BACKENDS,
                    help=f"torch | onnx (the model exported to ONNX, run by onnxruntime) | auto (onnx int8 where "
                         f"the model has thresholds tuned for it, else torch) (default: {backend})")
    ap.add_argument("--taxonomy", choices=["ekman", "sentiment"],
                    help="a 28-label model's scores rolled up to Ekman's six + neutral or the sentiment groups, with "
                         "thresholds tuned for them on dev (thresholds.json's `taxonomies`)")
    ap.add_argument("--batch-size", type=positive, default=64, help="texts per forward pass (default 64)")
    ap.add_argument("--threads", type=positive, help="CPU threads (default: $EMOTION_CLASSIFIER_THREADS, else "
                    "$OMP_NUM_THREADS, else the cores other jobs leave idle now)")


def has_int8_thresholds(model_dir: str | Path) -> bool:
    """Whether thresholds.json, valid for these weights, holds thresholds tuned on the onnxruntime int8 model's own
    dev scores (read_tuned's checks: a stale or damaged file has none)."""
    from ..inference import stale_int8
    from ..model_dir import ONNX_INT8, ThresholdsError, read_tuned

    try:
        section = read_tuned(model_dir).get(ONNX_INT8)
        if not isinstance(section, dict):
            return False
        stale_int8(section, model_dir)
        return True
    except ThresholdsError as e:
        if "onnxruntime int8" in str(e):  # tuned elsewhere: say why auto does not take them
            print(f"{e}", file=sys.stderr)
        return False


def chosen_backend(args: argparse.Namespace) -> tuple[str, bool]:
    """(backend, quantize) for the flags: `auto` is onnx int8 where the model has int8 thresholds and onnxruntime
    is installed, else torch fp32; it says which on stderr."""
    if args.backend != "auto":
        return args.backend, args.quantize
    import importlib.util

    if importlib.util.find_spec("onnxruntime") and has_int8_thresholds(args.model_dir):
        print("backend: onnx int8 (thresholds tuned for it in thresholds.json)", file=sys.stderr)
        return "onnx", True
    why = "no onnxruntime" if not importlib.util.find_spec("onnxruntime") else "no int8 thresholds"
    print(f"backend: torch ({why}; --backend onnx --quantize to choose onnx int8 anyway)", file=sys.stderr)
    return "torch", args.quantize


def load_classifier(args: argparse.Namespace, threads: int | None = None):
    """The EmotionClassifier the flags describe, on `threads` CPU threads (default: --threads, else the cores idle
    now). Tuned thresholds are required unless --thresholds fixed: predicting at 0.5 by accident is silently worse."""
    from .. import hardware
    from ..inference import EmotionClassifier

    hardware.use_threads(args.threads or threads or hardware.free_threads())
    backend, quantize = chosen_backend(args)
    return EmotionClassifier.load(args.model_dir, strategy=args.thresholds, precision=args.precision,
                                  batch_size=args.batch_size, quantize=quantize, device=args.device,
                                  backend=backend, require_thresholds=args.thresholds != "fixed",
                                  taxonomy=getattr(args, "taxonomy", None))
