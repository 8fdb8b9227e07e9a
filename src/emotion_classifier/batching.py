"""Token ids -> padded, length-bucketed batches, and logits over a whole split: what training and inference
share (scoring depends on this module, never on the training loop)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .hardware import autocast


def bucket_batches(lengths, batch_size: int, chunk_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length within chunks of `chunk_batches` batches, cut batches, shuffle the batches.
    Batches hold similar lengths (little padding) yet the order stays random."""
    idx = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(idx), chunk):
        part = idx[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class TokenData:
    """Token id lists -> padded batches for a model taking (input_ids, attention_mask)."""

    def __init__(self, ids: list[list[int]], pad_id: int):
        self.ids, self.pad_id = ids, pad_id
        self.lengths = [len(s) for s in ids]

    def batch(self, idx) -> dict[str, torch.Tensor]:
        return pad([self.ids[i] for i in idx], self.pad_id)


class FeatureData:
    """Precomputed encoder features -> batches for a head taking one tensor."""

    def __init__(self, feats: torch.Tensor):
        self.feats = feats
        self.lengths = [1] * len(feats)

    def batch(self, idx) -> dict[str, torch.Tensor]:
        return {"input": self.feats[torch.as_tensor(idx)]}


def call(module: nn.Module, batch: dict, device):
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return module(batch["input"]) if "input" in batch else module(**batch)


@torch.inference_mode()
def predict_logits(module: nn.Module, data, batch_size: int, device, precision: str,
                   progress: bool = False) -> np.ndarray:
    """Logits in the original order, computed over length-sorted batches."""
    module.eval()
    out = None
    batches = sorted_batches(data.lengths, batch_size)
    for idx in tqdm(batches, desc="predict", unit="batch", disable=None if progress else True):  # None: not off a TTY
        with autocast(device, precision):
            logits = call(module, data.batch(idx), device).float().cpu().numpy()
        if out is None:
            out = np.empty((len(data.lengths), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out
