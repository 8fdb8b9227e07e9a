"""BiLSTM over token embeddings (initialised from the encoder's), read out at the last token or max-pooled."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..fields import Field, choice, integer, number, param
from . import Architecture, register
from .layers import embedding, embeddings_from_encoder


class BiLSTM(nn.Module):
    """Embedding -> (Bi)LSTM over real tokens only (packed) -> last-token or max-pool -> linear."""

    def __init__(self, emb: nn.Embedding, n_labels: int, pooling: str, hidden_size: int, num_layers: int,
                 dropout: float, bidirectional: bool):
        super().__init__()
        self.pooling = pooling
        self.embedding = emb
        self.lstm = nn.LSTM(emb.embedding_dim, hidden_size, num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), n_labels)

    def forward(self, input_ids, attention_mask):
        if getattr(self, "unpacked", False):
            return self.forward_unpacked(input_ids, attention_mask)
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        x = self.dropout(self.embedding(input_ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h, _) = self.lstm(packed)
        if self.pooling == "last":
            # Packed: the forward final state is at each sequence's last real token, the
            # backward one at its first token; padding is never read.
            feats = torch.cat([h[-2], h[-1]], dim=1) if self.lstm.bidirectional else h[-1]
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            feats = out.max(dim=1).values
        return self.classifier(self.dropout(feats))


    def forward_unpacked(self, input_ids, attention_mask):
        """The same function without packed sequences, which ONNX cannot express: each layer runs forward over
        the padded batch (padding comes after the real tokens, so it never reaches them) and backward over each
        text reversed within its own length. `emotion-export --format onnx` traces this path."""
        lengths = attention_mask.sum(1).clamp(min=1)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        reverse = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
        flip = lambda t: torch.gather(t, 1, reverse[:, :, None].expand(-1, -1, t.shape[2]))  # noqa: E731
        x = self.dropout(self.embedding(input_ids))
        lstm, dirs = self.lstm, 2 if self.lstm.bidirectional else 1
        for layer in range(lstm.num_layers):
            outs = []
            for d, suffix in enumerate(["", "_reverse"][:dirs]):
                weights = [getattr(lstm, f"{w}_l{layer}{suffix}") for w in ("weight_ih", "weight_hh", "bias_ih",
                                                                             "bias_hh")]
                h0 = x.new_zeros(1, x.shape[0], lstm.hidden_size)
                run = lambda t: torch._VF.lstm(t, (h0, h0), weights, True, 1, 0.0, False, False, True)[0]  # noqa
                outs.append(run(x) if d == 0 else flip(run(flip(x))))
            x = torch.cat(outs, dim=2)
        if self.pooling == "last":  # forward state at the last real token, backward state at the first
            last = torch.gather(x[:, :, :lstm.hidden_size], 1, (lengths - 1)[:, None, None].expand(-1, 1,
                                                                                                  lstm.hidden_size))
            feats = torch.cat([last[:, 0], x[:, 0, lstm.hidden_size:]], dim=1) if dirs == 2 else last[:, 0]
        else:
            feats = x.masked_fill((positions >= lengths[:, None])[:, :, None], float("-inf")).max(dim=1).values
        return self.classifier(self.dropout(feats))


@dataclass(frozen=True)
class BiLSTMConfig:
    embedding_dim: int = param(integer(1), 384)
    init_embeddings: str = param(choice("encoder", "random"), "encoder")
    hidden_size: int = param(integer(1), 256)
    num_layers: int = param(integer(1, 8), 1)
    dropout: float = param(number(0, 0.95), 0.3)
    bidirectional: bool = param(Field(bool), True)


def _builder(name: str, pooling: str):
    def build(arch: BiLSTMConfig, sizes: dict, encoder) -> BiLSTM:
        return BiLSTM(embedding(name, arch, sizes, encoder), sizes["n_labels"], pooling, arch.hidden_size,
                      arch.num_layers, arch.dropout, arch.bidirectional)
    return build


for _name, _pooling, _epochs in (("bilstm_lasttoken", "last", 3), ("bilstm_maxpool", "max", 5)):
    register(Architecture(name=_name, config=BiLSTMConfig, build=_builder(_name, _pooling),
                          needs_encoder=embeddings_from_encoder, recipe={"epochs": _epochs, "loss": "bce"}))
