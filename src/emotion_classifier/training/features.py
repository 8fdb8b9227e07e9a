"""Frozen-encoder features (feature-extract): computed once per encoder content, settings, code, machine and token
ids (training.identity.feature_key), cached on disk outside the workspace so queued experiments share them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import cache
from ..batching import TokenData, sorted_batches
from ..files import atomic_path
from ..hardware import autocast
from .identity import fingerprint


def default_feature_cache() -> Path:
    return cache.features_dir()


def encoder_features(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int,
                     device, precision: str, cache_dir: Path | None, key: dict) -> torch.Tensor:
    """Pooled frozen-encoder features, cached on disk per `key` and token ids, and the seconds computing them took
    (a reused file's own: a run's train time counts the work it stands on)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = cache_dir / f"{fingerprint(key, ids)}.safetensors" if cache_dir else None
    what = f"{len(ids)} texts, max_length {key.get('max_length')}"
    if path is not None and path.exists():
        try:
            with safe_open(str(path), "pt") as f:
                found = f.get_tensor("features"), float((f.metadata() or {}).get("seconds", 0.0))
            if found[0].shape[0] == len(ids):
                cache.touch(path)
                return found
        except Exception as e:  # safetensors raises its own types for a damaged file
            print(f"feature cache entry {path} is damaged ({str(e)[:120]}): computed again")
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
            save_file({"features": out.contiguous()}, str(tmp),
                      metadata={"seconds": f"{seconds:.2f}", "created": f"{time.time():.0f}", "what": what})
        if cache_dir == default_feature_cache():
            cache.after_write(path)
    return out, seconds
