"""Pieces several architectures share."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "cls":
        return hidden[:, 0]
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def mlp(d_in: int, n_out: int, layers: int, hidden: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Dropout(dropout)]
    for _ in range(layers):
        mods += [nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout)]
        d_in = hidden
    return nn.Sequential(*mods, nn.Linear(d_in, n_out))


def embedding(name: str, arch, sizes: dict, encoder: nn.Module | None) -> nn.Embedding:
    """A token embedding, initialised from the encoder's when `init_embeddings: encoder` (and an encoder is given:
    at training; a saved model loads its own weights)."""
    emb = nn.Embedding(sizes["vocab_size"], arch.embedding_dim, padding_idx=sizes["pad_id"])
    if encoder is not None and arch.init_embeddings == "encoder":
        weight = encoder.get_input_embeddings().weight
        if weight.shape[1] != arch.embedding_dim:
            raise UserError(f"model.{name}.init_embeddings: encoder needs embedding_dim = {weight.shape[1]} (the "
                            f"encoder's hidden size), got {arch.embedding_dim}; set embedding_dim: "
                            f"{weight.shape[1]} or init_embeddings: random")
        with torch.no_grad():
            emb.weight.copy_(weight)
    return emb


def embeddings_from_encoder(arch) -> bool:
    return arch.init_embeddings == "encoder"


def decay_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Optimizer groups of `module` at `lr`: no weight decay on biases and LayerNorm weights."""
    named = list(module.named_parameters())
    decay = [p for n, p in named if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in named if not (p.ndim > 1 and "LayerNorm" not in n)]
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": weight_decay},
                        {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]
