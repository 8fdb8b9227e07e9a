"""Inference: a trained model directory -> probabilities and labels, fast on CPU.

    from emotion_classifier import EmotionClassifier
    clf = EmotionClassifier.load("models")
    clf.predict(["Thank you so much!"])      # labels above their tuned thresholds, with scores
    clf.predict_proba(texts)                 # (n, 28) numpy array
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import hardware, models
from .errors import UserError
from .train import TokenData, predict_logits


class ThresholdsError(UserError):
    pass


def read_thresholds(model_dir: str | Path, strategy: str = "per_label") -> np.ndarray:
    """The tuned thresholds of `strategy`, refused unless they were tuned for these exact weights."""
    model_dir = Path(model_dir)
    path = model_dir / "thresholds.json"
    if not path.exists():
        raise ThresholdsError(f"{path}: no tuned thresholds; run `dvc repro tune_thresholds` first")
    th = json.loads(path.read_text())
    actual = models.weights_hash(model_dir)
    if th.get("weights_sha256") != actual:
        raise ThresholdsError(
            f"{path}: tuned for other weights (sha256 {str(th.get('weights_sha256'))[:12]}..., the model in "
            f"{model_dir} has {actual[:12]}...); re-tune them: `dvc repro tune_thresholds`")
    if strategy not in th["strategies"]:
        raise ThresholdsError(f"{path}: no strategy {strategy!r}; it has {', '.join(th['strategies'])}")
    return np.asarray(th["strategies"][strategy], dtype=np.float32)


BACKENDS = ("torch", "onnx")


class EmotionClassifier:
    """Scores on `device` (auto: CUDA when visible) in `precision` (fp32 by default: the same scores on
    every machine; auto = bf16 where the hardware does it natively, faster, scores within ~1e-3).
    `quantize`: int8 weights for the linear layers with fp32 activations, CPU only.
    `backend="onnx"`: the model exported to ONNX and run by onnxruntime (fp32; `quantize`: onnxruntime's
    int8 dynamic quantization)."""

    def __init__(self, model, config: dict, tokenizer, thresholds: np.ndarray | None = None,
                 precision: str = "fp32", batch_size: int = 64, quantize: bool = False, device: str = "auto",
                 backend: str = "torch"):
        if backend not in BACKENDS:
            raise UserError(f"backend is {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.device = hardware.resolve_device(device)
        if backend == "onnx":
            model, precision = self._onnx(model, tokenizer, quantize, precision), "fp32"
        elif quantize:
            self.device = self._check_quantize(device, precision)
            precision = "fp32"
            import warnings

            with warnings.catch_warnings():  # deprecated for torchao, which is not a dependency; still works
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                # not the LSTM: its dynamic-quantized kernel measured ~7x slower than fp32 here
                model = torch.ao.quantization.quantize_dynamic(model.cpu(), {torch.nn.Linear}, dtype=torch.qint8)
        self.model, self.config, self.tokenizer = model.to(self.device).eval(), config, tokenizer
        self.labels: list[str] = config["labels"]
        self.max_length: int = config["max_length"]
        self.tuned = thresholds is not None
        self.thresholds = thresholds if thresholds is not None else np.full(len(self.labels), 0.5, np.float32)
        self.precision = hardware.resolve_precision(precision, self.device)
        self.quantized = quantize
        self.batch_size = batch_size

    def _onnx(self, model, tokenizer, quantize: bool, precision: str):
        from .onnx_backend import session_for

        if precision == "bf16":
            raise UserError("the onnx backend runs fp32 (int8 with quantize); use precision fp32 or auto")
        self.device = torch.device("cpu")  # inputs are handed over on the CPU; onnxruntime picks its provider
        return session_for(model, tokenizer, int8=quantize, threads=hardware.n_cores())

    @staticmethod
    def _check_quantize(device: str, precision: str) -> torch.device:
        if precision == "bf16":
            raise UserError("quantize runs int8 weights with fp32 activations; it cannot be combined with "
                             "precision bf16 (use precision fp32 or auto)")
        if device not in ("auto", "cpu"):
            raise UserError(f"quantize uses CPU int8 kernels; it cannot run on device {device} (use cpu or auto)")
        return torch.device("cpu")

    @classmethod
    def load(cls, model_dir: str | Path = "models", strategy: str = "per_label", require_thresholds: bool = False,
             device: str = "auto", **kw) -> EmotionClassifier:
        model, cfg, tok = models.load(model_dir, hardware.resolve_device(device).type)
        try:
            th = read_thresholds(model_dir, strategy)
        except ThresholdsError as e:
            if require_thresholds:
                raise
            th = None  # an untuned model predicts at 0.5
            if strategy != "fixed":
                import warnings

                warnings.warn(f"{e}; predicting at 0.5 (strategy='fixed' says so on purpose)", stacklevel=2)
        return cls(model, cfg, tok, th, device=device, **kw)

    def describe(self) -> dict:
        """Device, precision, threads and CPU kind (or GPU) that produce these scores."""
        return {**hardware.describe(self.device, self.precision), **({"quantized": True} if self.quantized else {}),
                **({"backend": self.backend} if self.backend != "torch" else {})}

    @staticmethod
    def _texts(texts) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, not one string: use predict([text])")
        # An empty text still yields [CLS] [SEP]: a defined (if uninformative) prediction.
        return ["" if t is None else str(t) for t in texts]

    def _ids(self, texts) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def logits(self, texts, progress: bool = False) -> np.ndarray:
        texts = self._texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        hardware.use_all_cores()
        data = TokenData(self._ids(texts), self.tokenizer.pad_token_id)
        return predict_logits(self.model, data, self.batch_size, self.device, self.precision, progress)

    def predict_proba(self, texts, progress: bool = False) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(texts, progress)))

    def predict(self, texts, all_scores: bool = False) -> list[list[tuple[str, float]]]:
        """Per text, (label, score) pairs above the tuned thresholds (all 28 with `all_scores`), best first."""
        return self.decide(self.predict_proba(texts), all_scores)

    def decide(self, probs: np.ndarray, all_scores: bool = False) -> list[list[tuple[str, float]]]:
        out = []
        for p in probs:
            keep = range(len(p)) if all_scores else np.flatnonzero(p >= self.thresholds)
            out.append(sorted(((self.labels[i], float(p[i])) for i in keep), key=lambda x: -x[1]))
        return out
