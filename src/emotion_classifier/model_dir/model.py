"""Build a registered architecture, and save/load a trained model directory (its format: `model_dir`).

Every model maps (input_ids, attention_mask) -> logits over the labels, so training, threshold
tuning, evaluation and prediction treat them alike (the architectures: `architectures/`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from .. import architectures
from ..errors import UserError
from ..fields import as_tree, build_section
from ..files import atomic_dir, atomic_path
from . import (
    CONFIG,
    FORMAT_VERSION,
    MANIFEST,
    TOKENIZER,
    WEIGHTS,
    ModelDirError,
    model_files,
    read_tuned,
    strategy_thresholds,
    write_manifest,
)

if TYPE_CHECKING:
    from ..params import ModelSpec


def sizes(tokenizer, labels: list[str]) -> dict:
    return {"vocab_size": len(tokenizer), "pad_id": tokenizer.pad_token_id, "n_labels": len(labels)}


def build(spec: ModelSpec, tokenizer, labels: list[str], device_type: str = "cpu") -> tuple[nn.Module, dict]:
    """A new model for training (pretrained encoder weights where the architecture wants them),
    and the config that rebuilds it offline (see `load`)."""
    from ..encoder import load_encoder, map_mask_tokens

    entry, arch = architectures.get(spec.name), spec.arch
    cfg = {"format_version": FORMAT_VERSION, "name": spec.name, "arch": as_tree(arch), "encoder": spec.encoder,
           "max_length": spec.max_length, **sizes(tokenizer, labels), "labels": list(labels)}
    encoder = None
    if entry.needs_encoder(arch):
        encoder = load_encoder(spec.encoder, len(tokenizer), device_type, getattr(arch, "encoder_dropout", None))
        map_mask_tokens(encoder, tokenizer, as_tree(spec.mask_words))
        if entry.keeps_encoder:
            # without `_name_or_path` (where the encoder lay: a path of this machine's venv) and the like
            cfg["encoder_config"] = {k: v for k, v in encoder.config.to_dict().items() if not k.startswith("_")}
    return entry.build(arch, cfg, encoder), cfg


def n_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save(model: nn.Module, cfg: dict, tokenizer, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write weights (safetensors), config and tokenizer: all that `load` needs, offline.

    Each is replaced atomically on its own: `out_dir` also holds thresholds.json, another stage's output.
    """
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # from here until the new one, the directory is incomplete
    with atomic_path(out_dir / WEIGHTS) as tmp:
        save_model(model, str(tmp))
    with atomic_dir(out_dir / TOKENIZER) as tmp:
        tokenizer.save_pretrained(str(tmp))
    with atomic_path(out_dir / CONFIG) as tmp:
        tmp.write_text(json.dumps({**cfg, **(extra or {})}, indent=2) + "\n")
    write_manifest(out_dir, model_files(out_dir))


def read_config(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / CONFIG
    if not path.exists() or not (model_dir / WEIGHTS).exists():
        raise ModelDirError(f"{model_dir}: no trained model (missing {CONFIG} or {WEIGHTS}); get main's with "
                            "`dvc pull` (from a remote that holds it) or train it: `make repro` (`dvc repro train`)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); `dvc checkout models` "
                            "or retrain (`dvc repro train`)") from None
    except UnicodeDecodeError as e:
        raise ModelDirError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    version = cfg.get("format_version") if isinstance(cfg, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(f"{model_dir}: written by an incompatible version (format {version}, "
                            f"this code reads {FORMAT_VERSION}); retrain with `dvc repro train`")
    missing = [k for k in ("name", "arch", "labels", "max_length", "vocab_size", "pad_id", "n_labels") if k not in cfg]
    entry = architectures.REGISTRY.get(cfg.get("name"))
    if missing or entry is None or (entry.keeps_encoder and "encoder_config" not in cfg):
        raise ModelDirError(f"{path}: not a model config this code can build (name {cfg.get('name')!r}, missing keys "
                            f"{missing or ['encoder_config']}); `dvc checkout models` or retrain (`dvc repro train`)")
    check_config(path, cfg, entry)
    return cfg


SIZES = {"max_length": 4096, "vocab_size": 10_000_000, "n_labels": 100_000}  # upper bounds of a sane config
ENCODER_SIZES = {"vocab_size": 10_000_000, "hidden_size": 65_536, "num_hidden_layers": 256,
                 "num_attention_heads": 1024, "intermediate_size": 262_144, "max_position_embeddings": 65_536}


def check_config(path: Path, cfg: dict, entry) -> None:
    """A model directory is input: its sizes, labels and architecture params are checked before anything is
    built from them (a damaged config must not allocate petabytes or fail deep inside torch)."""
    def bad(problem: str):
        raise ModelDirError(f"{path}: {problem}; the model directory is damaged: `dvc pull` or `dvc checkout models`, "
                            "or retrain (`dvc repro train`)")

    for key, hi in SIZES.items():
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
            bad(f"{key} is {value!r}; expected an integer in [1, {hi}]")
    if not isinstance(cfg["pad_id"], int) or not 0 <= cfg["pad_id"] < cfg["vocab_size"]:
        bad(f"pad_id is {cfg['pad_id']!r}; expected a token id below vocab_size {cfg['vocab_size']}")
    labels = cfg["labels"]
    if (not isinstance(labels, list) or len(labels) != cfg["n_labels"] or len(set(map(str, labels))) != len(labels)
            or not all(isinstance(x, str) and x and x == x.strip() for x in labels)):
        bad(f"labels must be {cfg['n_labels']} (n_labels) distinct names; it has "
            f"{len(labels) if isinstance(labels, list) else repr(labels)}")
    if not isinstance(cfg["arch"], dict):
        bad(f"arch is {cfg['arch']!r}; expected the architecture's params")
    for key in (f.name for f in dataclasses.fields(entry.config)):
        if key not in cfg["arch"]:
            bad(f"arch lacks {key!r} ({entry.name} needs it)")
    try:
        build_section(entry.config, cfg["arch"], "arch")
    except UserError as e:
        bad(str(e).removeprefix("params: "))
    encoder = cfg.get("encoder_config") if entry.keeps_encoder else {}
    if not isinstance(encoder, dict) or not isinstance(encoder.get("model_type", ""), str):
        bad("encoder_config is not a mapping with a model_type")
    for key, hi in ENCODER_SIZES.items():
        value = encoder.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
            bad(f"encoder_config.{key} is {value!r}; expected an integer in [1, {hi}]")


def arch_config(cfg: dict):
    """The architecture's typed config from a model's config.json (read_config checked it)."""
    return build_section(architectures.get(cfg["name"]).config, cfg["arch"], "arch")


def load(model_dir: str | Path, device_type: str = "cpu") -> tuple[nn.Module, dict, object]:
    """Rebuild a saved model from its directory alone (no hub, no bundled encoder needed)."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ..encoder import attention_for

    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    encoder = None
    if architectures.get(cfg["name"]).keeps_encoder:
        ec = {k: v for k, v in cfg["encoder_config"].items() if not k.startswith("_")}
        encoder = AutoModel.from_config(AutoConfig.for_model(ec.pop("model_type"), **ec),
                                        attn_implementation=attention_for(device_type))
    model = architectures.get(cfg["name"]).build(arch_config(cfg), cfg, encoder)
    try:
        load_model(model, str(model_dir / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for a truncated or foreign file
        raise ModelDirError(f"{model_dir / WEIGHTS}: cannot load the weights ({str(e).strip()[:200]}); the file "
                            "is damaged or not this model's: `dvc checkout models` or retrain (`dvc repro train`)"
                            ) from None
    for name in ("tokenizer_config.json", "tokenizer.json"):  # without tokenizer.json every word reads as [UNK]
        if not (model_dir / TOKENIZER / name).exists():
            raise ModelDirError(f"{model_dir / TOKENIZER / name}: missing (the tokenizer is saved with the weights); "
                                "`dvc pull` or `dvc checkout models`, or retrain (`dvc repro train`)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / TOKENIZER))
    if len(tokenizer) != cfg["vocab_size"]:
        raise ModelDirError(f"{model_dir / TOKENIZER}: {len(tokenizer)} tokens, but the model embeds "
                            f"{cfg['vocab_size']} (config.json vocab_size): not this model's tokenizer; "
                            "`dvc pull` or `dvc checkout models`, or retrain (`dvc repro train`)")
    return model.eval(), cfg, tokenizer



def read_thresholds(model_dir: str | Path, strategy: str = "per_label") -> np.ndarray:
    """The tuned thresholds of `strategy`, refused unless they were tuned for these exact weights."""
    return strategy_thresholds(read_tuned(model_dir, read_config(model_dir)["labels"]), strategy, model_dir)
