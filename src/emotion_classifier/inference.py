"""Inference: a trained model directory -> probabilities and labels, fast on CPU.

    from emotion_classifier import EmotionClassifier
    clf = EmotionClassifier.load("models")
    clf.predict(["Thank you so much!"])      # labels above their tuned thresholds, with scores
    clf.predict_proba(texts)                 # (n, labels) numpy array: one column per label of the model
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import hardware
from .batching import TokenData, predict_logits
from .encoder import bounded
from .errors import UserError
from .model_dir import ONNX_INT8, THRESHOLDS, ThresholdsError, member_dirs, read_tuned, strategy_thresholds
from .model_dir.model import load

BACKENDS = ("torch", "onnx")


class EmotionClassifier:
    """Scores on `device` (auto: CUDA when visible) in `precision` (fp32 by default: the same scores on
    every machine; auto = bf16 where the hardware does it natively, faster, scores within ~1e-3).
    `quantize`: int8 weights for the linear layers with fp32 activations, CPU only.
    `backend="onnx"`: the model exported to ONNX and run by onnxruntime (fp32; `quantize`: onnxruntime's
    int8 dynamic quantization).
    An ensemble (`members`: (model, config, tokenizer) of each further model) averages the models'
    probabilities with `member_weights` (the model first), which it needs for any combined score: without them
    only `member_probas` works (what tune_thresholds fits the weights on)."""

    def __init__(self, model, config: dict, tokenizer, thresholds: np.ndarray | None = None,
                 precision: str = "fp32", batch_size: int = 64, quantize: bool = False, device: str = "auto",
                 backend: str = "torch", members: list[tuple] = (), member_weights: np.ndarray | None = None):
        if backend not in BACKENDS:
            raise UserError(f"backend is {backend!r}; expected one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.device = hardware.resolve_device(device)
        if backend == "onnx":
            if precision == "bf16":
                raise UserError("the onnx backend runs fp32 (int8 with quantize); use precision fp32 or auto")
            self.device, precision = torch.device("cpu"), "fp32"  # onnxruntime picks its provider
        elif quantize:
            self.device, precision = self._check_quantize(device, precision), "fp32"
        self.parts = [(self._ready(m, tok, quantize), tok, cfg["max_length"])
                      for m, cfg, tok in [(model, config, tokenizer), *members]]
        self.model, self.config, self.tokenizer = self.parts[0][0], config, tokenizer
        n_models = len(self.parts)
        self.member_weights = (np.ones(1) if n_models == 1 else None if member_weights is None
                               else np.asarray(member_weights, dtype=np.float64))
        self.labels: list[str] = config["labels"]
        self.rollup: tuple[str, str, list[str]] | None = None  # (taxonomy, how, the model's labels): roll_up_to
        n_weights = n_models if self.member_weights is None else len(self.member_weights)
        if any(cfg["labels"] != self.labels for _, cfg, _ in members) or n_weights != n_models:
            raise UserError(f"an ensemble needs the same labels in every member and one weight per model "
                            f"({n_models} models, {len(self.member_weights)} weights)")
        self.max_length: int = config["max_length"]
        self.tuned = thresholds is not None
        self.thresholds = thresholds if thresholds is not None else np.full(len(self.labels), 0.5, np.float32)
        self.precision = hardware.resolve_precision(precision, self.device)
        self.quantized = quantize
        self.batch_size = batch_size

    def _ready(self, model, tokenizer, quantize: bool):
        """The model as this backend runs it."""
        if self.backend == "onnx":
            from .onnx_backend import session_for

            return session_for(model, tokenizer, int8=quantize, threads=hardware.use_threads(),
                               device_type=self.device.type)
        if quantize:
            import warnings

            with warnings.catch_warnings():  # deprecated for torchao, which is not a dependency; still works
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", UserWarning)
                # not the LSTM: its dynamic-quantized kernel measured ~7x slower than fp32 here
                model = torch.ao.quantization.quantize_dynamic(model.cpu(), {torch.nn.Linear}, dtype=torch.qint8)
        return model.to(self.device).eval()

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
             device: str = "auto", untuned: bool = False, taxonomy: str | None = None, **kw) -> EmotionClassifier:
        """A model directory, or an ensemble's (its further models in members/1, members/2, ...). An ensemble needs
        thresholds.json's member weights tuned for these models (never silently equal ones), unless `untuned`: its
        members' own scores only, to tune them on. `taxonomy` (ekman, sentiment): a 28-label model's scores rolled up
        to that taxonomy's groups, with the thresholds tune_thresholds fitted on dev for them."""
        device_type = hardware.resolve_device(device).type
        model, cfg, tok = load(model_dir, device_type)
        members = [load(d, device_type) for d in member_dirs(model_dir)]
        tuned = th = None
        onnx_int8 = bool(kw.get("quantize")) and kw.get("backend") == "onnx"
        try:  # one read of thresholds.json: the weights hash covers every member
            tuned = read_tuned(model_dir, cfg["labels"])
            if onnx_int8 and strategy != "fixed" and isinstance(tuned.get(ONNX_INT8), dict):
                stale_int8(tuned[ONNX_INT8], model_dir)
            th = strategy_thresholds(tuned, strategy, model_dir, onnx_int8=onnx_int8)
        except StaleInt8Thresholds:
            raise
        except ThresholdsError as e:
            if require_thresholds or (members and not untuned):
                raise ThresholdsError(f"{e}" + ("" if require_thresholds else
                                      f" (an ensemble of {1 + len(members)} models is combined with the member "
                                      "weights tuned there)")) from None
            th = None  # an untuned model predicts at 0.5
            if strategy != "fixed":
                import warnings

                warnings.warn(f"{e}; predicting at 0.5 (strategy='fixed' says so on purpose)", stacklevel=2)
        weights = tuned.get("member_weights") if tuned and members and not untuned else None
        clf = cls(model, cfg, tok, th, device=device, members=members, member_weights=weights, **kw)
        if taxonomy is not None:
            clf.roll_up_to(taxonomy, rollup_section(tuned, taxonomy, model_dir, onnx_int8), strategy)
        return clf

    def roll_up_to(self, taxonomy: str, section: dict, strategy: str) -> None:
        """Score `taxonomy`'s groups from this model's labels (taxonomy.roll_up, as tuned: max or noisy-or), at the
        thresholds `section` holds for them."""
        self.rollup = (taxonomy, section["how"], self.labels)
        self.labels = list(section["labels"])
        self.thresholds = np.asarray(section["strategies"][strategy], dtype=np.float32)

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

    def _logits(self, part: int, texts: list[str], progress: bool) -> np.ndarray:
        model, tokenizer, max_length = self.parts[part]
        hardware.use_threads()  # once: an explicit setting (env, --threads, the caller's own) stands
        texts = [bounded(t, max_length) for t in texts]  # one huge line: bounded memory, the same tokens
        data = TokenData(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"],
                         tokenizer.pad_token_id)
        return predict_logits(model, data, self.batch_size, self.device, self.precision, progress)

    def member_probas(self, texts, progress: bool = False) -> list[np.ndarray]:
        """Each model's own probabilities (one array for a single model)."""
        texts = self._texts(texts)
        if not texts:
            n_labels = len(self.rollup[2] if self.rollup else self.labels)
            return [np.zeros((0, n_labels), dtype=np.float32) for _ in self.parts]
        return [1.0 / (1.0 + np.exp(-self._logits(k, texts, progress))) for k in range(len(self.parts))]

    def logits(self, texts, progress: bool = False) -> np.ndarray:
        if len(self.parts) > 1 or self.rollup is not None:  # averaged or rolled-up probabilities: their logits
            from .ensemble import logit

            return logit(self.predict_proba(texts, progress)).astype(np.float32)
        texts = self._texts(texts)
        return self._logits(0, texts, progress) if texts else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict_proba(self, texts, progress: bool = False) -> np.ndarray:
        from .ensemble import average

        if self.member_weights is None:
            raise UserError(f"an ensemble of {len(self.parts)} models without member weights: tune them "
                            "(`dvc repro tune_thresholds`) or pass member_weights; member_probas gives each model's")
        probs = self.member_probas(texts, progress)
        probs = probs[0] if len(probs) == 1 else average(probs, self.member_weights)
        if self.rollup is not None:
            from .taxonomy import roll_up

            taxonomy, how, fine_labels = self.rollup
            probs = roll_up(probs, fine_labels, taxonomy, how).astype(np.float32)
        return probs

    def predict(self, texts, all_scores: bool = False) -> list[list[tuple[str, float]]]:
        """Per text, (label, score) pairs above the tuned thresholds (every label with `all_scores`), best first."""
        return self.decide(self.predict_proba(texts), all_scores)

    def decide(self, probs: np.ndarray, all_scores: bool = False) -> list[list[tuple[str, float]]]:
        out = []
        for p in probs:
            keep = range(len(p)) if all_scores else np.flatnonzero(p >= self.thresholds)
            out.append(sorted(((self.labels[i], float(p[i])) for i in keep), key=lambda x: -x[1]))
        return out


class StaleInt8Thresholds(ThresholdsError):
    """Thresholds tuned for the int8 model under another onnxruntime, quantization policy or CPU kind."""


def stale_int8(section: dict, model_dir) -> None:
    """Refuse int8 thresholds tuned where the int8 scores differ (onnxruntime, policy, CPU kind), in one line."""
    from .onnx_backend import int8_record_problem

    problem = int8_record_problem(section)
    if problem:
        raise StaleInt8Thresholds(f"{Path(model_dir) / THRESHOLDS}: its thresholds for the onnxruntime int8 model do "
                                  f"not fit here: {problem}; re-tune them (`dvc repro tune_thresholds`) or use "
                                  "--backend torch")


TAXONOMIES = "taxonomies"  # thresholds.json's section: per coarse taxonomy, how to roll up and its thresholds


def rollup_section(tuned: dict | None, taxonomy: str, model_dir, onnx_int8: bool = False) -> dict:
    """thresholds.json's roll-up to `taxonomy` (the int8 model's own where it is served), checked: one threshold in
    [0, 1] per group; a one-line error where none was tuned."""
    path = Path(model_dir) / THRESHOLDS
    source = (tuned or {}).get(ONNX_INT8) if onnx_int8 and isinstance((tuned or {}).get(ONNX_INT8), dict) else tuned
    section = ((source or {}).get(TAXONOMIES) or {}).get(taxonomy)
    if not isinstance(section, dict):
        raise ThresholdsError(f"{path}: no roll-up to {taxonomy} tuned (tune_thresholds tunes one for a model of "
                              "the 28 GoEmotions labels); a model trained with data.taxonomy set has its labels "
                              "already")
    n = len(section.get("labels", []))
    for name, values in section.get("strategies", {}).items():
        if not (isinstance(values, list) and len(values) == n and all(0 <= v <= 1 for v in values)):
            raise ThresholdsError(f"{path}: the {taxonomy} roll-up's {name!r} thresholds are not one number in "
                                  f"[0, 1] per group; re-tune them: `dvc repro tune_thresholds`")
    return section

