"""A frozen pretrained encoder and an MLP head trained on its cached, pooled features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..fields import choice, integer, number, param
from . import Architecture, register
from .layers import mlp, pool


class FeatureExtract(nn.Module):
    """Frozen encoder -> pooled features -> MLP head. Training only ever sees cached features.

    `feature_layers` > 1 concatenates the pooled outputs of that many top layers: lower layers keep
    lexical and syntactic cues that the last layer of a sentence-similarity model has averaged away.
    """

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, head_layers: int, head_hidden: int,
                 dropout: float, feature_layers: int = 1):
        super().__init__()
        n_hidden = encoder.config.num_hidden_layers + 1  # the embeddings' output counts as one
        if feature_layers > n_hidden:
            raise UserError(f"model.transformer_featureextract.feature_layers is {feature_layers} but the encoder "
                            f"has {n_hidden} hidden states (embeddings + {n_hidden - 1} layers)")
        self.pooling = pooling
        self.feature_layers = feature_layers
        self.encoder = encoder.requires_grad_(False).eval()
        self.head = mlp(encoder.config.hidden_size * feature_layers, n_labels, head_layers, head_hidden, dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout in the features
        return self

    @torch.no_grad()
    def features(self, input_ids, attention_mask):
        if self.feature_layers == 1:
            return pool(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state,
                        attention_mask, self.pooling)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return torch.cat([pool(h, attention_mask, self.pooling) for h in hidden.hidden_states[-self.feature_layers:]],
                         dim=1)

    def forward(self, input_ids, attention_mask):
        return self.head(self.features(input_ids, attention_mask).float())


@dataclass(frozen=True)
class FeatureExtractConfig:
    pooling: str = param(choice("cls", "mean"), "mean")
    feature_layers: int = param(integer(1, 64), 4)  # pooled outputs of this many top hidden states, concatenated
    head_layers: int = param(integer(0, 8), 1)
    head_hidden: int = param(integer(1), 512)
    dropout: float = param(number(0, 0.95), 0.2)
    feature_batch_size: int = param(integer(1), 128)  # batch size of the one encoding pass


register(Architecture(
    name="transformer_featureextract",
    config=FeatureExtractConfig,
    recipe={"epochs": 30, "loss": "bce"},
    output_layer=lambda model: model.head[-1],
    build=lambda arch, sizes, encoder: FeatureExtract(encoder, sizes["n_labels"], arch.pooling, arch.head_layers,
                                                      arch.head_hidden, arch.dropout, arch.feature_layers),
    needs_encoder=lambda arch: True,
    keeps_encoder=True,
    head_on_features=True,
    feature_params=("pooling", "feature_layers", "feature_batch_size"),  # batch padding moves low bits
))
