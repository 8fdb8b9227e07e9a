"""TextCNN (Kim 2014, CNN-non-static): token embeddings initialised from the encoder's, parallel 1-D
convolutions of several widths, max-pool over each text's real tokens, dropout, linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..fields import Field, choice, integer, number, param
from . import Architecture, register
from .layers import embedding, embeddings_from_encoder


class TextCNN(nn.Module):
    def __init__(self, emb: nn.Embedding, n_labels: int, filters: int, kernel_sizes: list[int], dropout: float):
        super().__init__()
        self.embedding = emb
        # padding k-1 ("wide"): a text shorter than the widest window still fills every window once
        self.convs = nn.ModuleList(nn.Conv1d(emb.embedding_dim, filters, k, padding=k - 1) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(filters * len(kernel_sizes), n_labels)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(self.embedding.weight.dtype)
        x = (self.embedding(input_ids) * mask).transpose(1, 2)  # batch padding reads as the zeros of `padding`
        lengths = attention_mask.sum(1, keepdim=True)
        pooled = []
        for conv in self.convs:
            out = torch.relu(conv(x))  # (batch, filters, length + k - 1); window j covers tokens j-k+1 .. j
            k = conv.kernel_size[0]
            real = torch.arange(out.shape[-1], device=out.device)[None, :] <= lengths + k - 2  # holds a real token
            pooled.append(out.masked_fill(~real[:, None, :], float("-inf")).max(dim=-1).values)
        return self.classifier(self.dropout(torch.cat(pooled, dim=1)))


@dataclass(frozen=True)
class TextCNNConfig:
    embedding_dim: int = param(integer(1), 384)
    init_embeddings: str = param(choice("encoder", "random"), "encoder")
    filters: int = param(integer(1), 100)  # per window width
    kernel_sizes: str = param(Field(str, pattern=r"[1-9]\d*(,[1-9]\d*)*", pattern_text="window widths, e.g. '3,4,5'"),
                              "3,4,5")
    dropout: float = param(number(0, 0.95), 0.5)


def build(arch: TextCNNConfig, sizes: dict, encoder) -> TextCNN:
    return TextCNN(embedding("textcnn", arch, sizes, encoder), sizes["n_labels"], arch.filters,
                   [int(k) for k in arch.kernel_sizes.split(",")], arch.dropout)


register(Architecture(
    name="textcnn",
    config=TextCNNConfig,
    recipe={"epochs": 8, "loss": "bce"},
    build=build,
    needs_encoder=embeddings_from_encoder,
))
