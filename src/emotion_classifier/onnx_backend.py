"""ONNX: any trained model as one graph (input_ids, attention_mask -> logits, pooling inside), run by
onnxruntime. A transformer's graph is fused for inference (attention, GELU, LayerNorm with its residual, the
embeddings: onnxruntime's transformer optimizer); int8 is onnxruntime's dynamic quantization, per output channel,
with the layers that lose the most kept in fp32 (INT8, chosen on dev by benchmarks/quantization.py)."""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from dataclasses import dataclass
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
        # an eval-mode wrapper: the exporter restores the wrapper's mode to every submodule afterwards
        torch.onnx.export(_Traceable(model).eval(), (ids["input_ids"], ids["attention_mask"]), str(path),
                          input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    return Path(path)


def fuse(src: str | Path, dst: str | Path, model: nn.Module) -> Path:
    """The graph with onnxruntime's transformer fusions where `model` holds a BERT-style encoder (its config names the
    heads and the width); otherwise `src` as it is (onnxruntime's own graph optimizations still apply at load)."""
    config = getattr(getattr(model, "encoder", None), "config", None)
    if config is None or not hasattr(config, "num_attention_heads"):
        return Path(src)
    _onnxruntime()
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # notes on fusions it did not need
    optimized = optimize_model(str(src), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=0)
    optimized.save_model_to_file(str(dst))
    return Path(dst)


@dataclass(frozen=True)
class Int8:
    """What int8 quantizes: weights per output channel or per tensor, and which layers stay fp32."""

    per_channel: bool = True
    keep_classifier: bool = True  # the last Linear: one output per label, whose rounding moves that score
    keep_last_blocks: int = 0  # the encoder's last N transformer blocks

    def kept(self, onnx_path: str | Path, n_blocks: int) -> list[str]:
        """Names of the graph's nodes this policy keeps in fp32."""
        import onnx

        last = {str(i) for i in range(max(0, n_blocks - self.keep_last_blocks), n_blocks)}
        kept = []
        for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
            block = re.search(r"layer\.(\d+)/|^Attention_(\d+)$", node.name)
            if (self.keep_classifier and "classifier" in node.name) or (
                    block and (block.group(1) or block.group(2)) in last):
                kept += [node.name, f"{node.name}_MatMul"]  # the quantizer first splits a Gemm into MatMul + Add
        return kept


INT8 = Int8()  # see benchmarks/quantization.py and README: dev macro F1 within .005 of fp32


def quantize(src: str | Path, dst: str | Path, model: nn.Module | None = None, policy: Int8 = INT8) -> Path:
    """int8 weights, activations quantized on the fly (onnxruntime's dynamic quantization), as `policy` says."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _onnxruntime()
    config = getattr(getattr(model, "encoder", None), "config", None)
    kept = policy.kept(src, getattr(config, "num_hidden_layers", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # DefaultTensorType: shape inference cannot type the outputs of the fused (com.microsoft) operators
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=policy.per_channel,
                         nodes_to_exclude=kept, extra_options={"DefaultTensorType": 1})  # 1: TensorProto.FLOAT
    return Path(dst)


def providers(device_type: str = "cpu") -> list[str]:
    """onnxruntime's providers for `device_type` (the model's device): CUDA only where the device asked is cuda."""
    available = _onnxruntime().get_available_providers()
    if device_type == "cuda" and "CUDAExecutionProvider" not in available:
        raise UserError("device cuda with --backend onnx needs onnxruntime-gpu (CUDAExecutionProvider); "
                        "this onnxruntime has " + ", ".join(available))
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider") if device_type == "cuda" else ("CPUExecutionProvider",)
    return [p for p in wanted if p in available]


def int8_record() -> dict:
    """What int8 thresholds are tuned under (tune_thresholds writes it beside them): onnxruntime's version, the
    quantization policy and the CPU kind, each of which moves the int8 scores."""
    from dataclasses import asdict

    from .hardware import cpu_kind

    return {"onnxruntime": _onnxruntime().__version__, "policy": asdict(INT8), "cpu_kind": cpu_kind()}


def int8_record_problem(section: dict) -> str | None:
    """Why int8 thresholds (thresholds.json's onnx_int8 section) do not fit the int8 model here, or None."""
    recorded, here = section.get("tuned_with"), int8_record()
    if not isinstance(recorded, dict):
        return "they record no onnxruntime version, quantization policy or CPU kind (tuned before these were kept)"
    changed = [f"{k} {recorded.get(k)} -> {v}" for k, v in here.items() if recorded.get(k) != v]
    return f"they were tuned under another {'; '.join(changed)}" if changed else None


class OrtModel:
    """An onnxruntime session that scores like the torch model: called with torch tensors, returns logits."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None, device_type: str = "cpu"):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers(device_type))
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids, attention_mask):
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        out = self.session.run(["logits"], {k: feeds[k].cpu().numpy().astype(np.int64) for k in self.inputs})[0]
        return torch.from_numpy(out)

    def eval(self):
        return self

    def to(self, device):
        return self


def inference_graph(model: nn.Module, tokenizer, path: str | Path, int8: bool = False,
                    policy: Int8 = INT8) -> Path:
    """`model` exported to `path` as it is served: fused, and int8 by `policy` when asked."""
    path = Path(path)
    traced = write(model, tokenizer, path.with_suffix(".traced.onnx"))
    fused = fuse(traced, path.with_suffix(".fused.onnx"), model)
    out = quantize(fused, path, model, policy) if int8 else fused.replace(path)
    for leftover in {traced, fused} - {out}:
        leftover.unlink(missing_ok=True)
    return out


def session_for(model: nn.Module, tokenizer, int8: bool = False, threads: int | None = None,
                policy: Int8 = INT8, device_type: str = "cpu") -> OrtModel:
    """Export `model` to a temp file as it is served (fused; int8 when asked), then open it with onnxruntime."""
    with tempfile.TemporaryDirectory(prefix="emotion-onnx-") as tmp:
        return OrtModel(inference_graph(model, tokenizer, Path(tmp) / "model.onnx", int8, policy), threads,
                        device_type)
