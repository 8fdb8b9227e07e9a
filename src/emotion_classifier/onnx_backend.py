"""ONNX: any trained model as one graph (input_ids, attention_mask -> logits, pooling inside), run by
onnxruntime; int8 by onnxruntime's dynamic quantization."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import UserError

INPUTS = ("input_ids", "attention_mask")
OPSET = 17


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("the onnx backend needs onnxruntime: pip install -e '.[onnx]'") from None
    return onnxruntime


class _Traceable(nn.Module):
    """The model's export path where it has one (e.g. the BiLSTMs without packed sequences)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        run = getattr(self.model, "forward_unpacked", self.model)
        return run(input_ids, attention_mask)


def write(model: nn.Module, tokenizer, path: str | Path) -> Path:
    """Trace `model` (fp32, CPU, eval) to `path`, with dynamic batch and sequence axes."""
    model = model.float().cpu().eval()
    ids = tokenizer(["a first text to trace", "a second"], padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(_Traceable(model), (ids["input_ids"], ids["attention_mask"]), str(path),
                          input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    return Path(path)


def quantize(src: str | Path, dst: str | Path) -> Path:
    """int8 weights, activations quantized on the fly (onnxruntime's dynamic quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _onnxruntime()
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return Path(dst)


def providers() -> list[str]:
    available = _onnxruntime().get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OrtModel:
    """An onnxruntime session that scores like the torch model: called with torch tensors, returns logits."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers())
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids, attention_mask):
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        out = self.session.run(["logits"], {k: feeds[k].cpu().numpy().astype(np.int64) for k in self.inputs})[0]
        return torch.from_numpy(out)

    def eval(self):
        return self

    def to(self, device):
        return self


def session_for(model: nn.Module, tokenizer, int8: bool = False, threads: int | None = None) -> OrtModel:
    """Export `model` to a temp file (and quantize it), then open it with onnxruntime."""
    with tempfile.TemporaryDirectory(prefix="emotion-onnx-") as tmp:
        path = write(model, tokenizer, Path(tmp) / "model.onnx")
        if int8:
            path = quantize(path, Path(tmp) / "model.int8.onnx")
        return OrtModel(path, threads)
