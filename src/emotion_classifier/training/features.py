"""Frozen-encoder features (feature-extract): computed once per encoder, pooling, length and texts, cached on disk
outside the workspace so queued experiments share them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..hardware import autocast
from ..io import atomic_path
from .batches import TokenData, sorted_batches
from .checkpoint import cache_root, fingerprint


def default_feature_cache() -> Path:
    return cache_root() / "features"


def encoder_features(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int,
                     device, precision: str, cache_dir: Path | None, key: dict) -> torch.Tensor:
    """Pooled frozen-encoder features, cached on disk per (encoder, pooling, max_length, texts), and the seconds
    computing them took (a reused file's own: a run's train time counts the work it stands on)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = cache_dir / f"{fingerprint(key, ids)}.safetensors" if cache_dir else None
    if path is not None and path.exists():
        with safe_open(str(path), "pt") as f:
            return f.get_tensor("features"), float((f.metadata() or {}).get("seconds", 0.0))
    t0 = time.time()
    data = TokenData(ids, pad_id)
    model.encoder.to(device)
    feats, order = [], []
    with torch.inference_mode():
        for idx in tqdm(sorted_batches(data.lengths, batch_size), desc="encoder features", unit="batch",
                        leave=False, disable=None):
            with autocast(device, precision):
                feats.append(model.features(**{k: v.to(device) for k, v in data.batch(idx).items()}).float().cpu())
            order.append(idx)
    out = torch.empty((len(ids), feats[0].shape[1]))
    out[torch.as_tensor(np.concatenate(order))] = torch.cat(feats)
    seconds = time.time() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"features": out.contiguous()}, str(tmp), metadata={"seconds": f"{seconds:.2f}"})
    return out, seconds
