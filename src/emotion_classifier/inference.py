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

from . import models
from .train import TokenData, n_cores, predict_logits, resolve_precision


class ThresholdsError(RuntimeError):
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


class EmotionClassifier:
    def __init__(self, model, config: dict, tokenizer, thresholds: np.ndarray | None = None,
                 precision: str = "auto", batch_size: int = 64, quantize: bool = False):
        if quantize:  # int8 weights for the linear layers, activations quantized on the fly
            # (not the LSTM: its dynamic-quantized kernel measured ~7x slower than fp32 here)
            import warnings

            with warnings.catch_warnings():  # deprecated for torchao, which is not a dependency; still works
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model, self.config, self.tokenizer = model.eval(), config, tokenizer
        self.labels: list[str] = config["labels"]
        self.max_length: int = config["max_length"]
        self.tuned = thresholds is not None
        self.thresholds = thresholds if thresholds is not None else np.full(len(self.labels), 0.5, np.float32)
        self.device = torch.device("cpu")
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_dir: str | Path = "models", strategy: str = "per_label", require_thresholds: bool = False,
             **kw) -> EmotionClassifier:
        model, cfg, tok = models.load(model_dir)
        try:
            th = read_thresholds(model_dir, strategy)
        except ThresholdsError:
            if require_thresholds:
                raise
            th = None  # an untuned model predicts at 0.5
        return cls(model, cfg, tok, th, **kw)

    def _ids(self, texts) -> list[list[int]]:
        # An empty text still yields [CLS] [SEP]: a defined (if uninformative) prediction.
        texts = ["" if t is None else str(t) for t in texts]
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def logits(self, texts, progress: bool = False) -> np.ndarray:
        torch.set_num_threads(n_cores())
        data = TokenData(self._ids(texts), self.tokenizer.pad_token_id)
        if not data.ids:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
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
