"""A pretrained encoder fine-tuned whole, with a linear classifier on its pooled output."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import UserError
from ..fields import choice, integer, number, param
from . import Architecture, register
from .layers import decay_groups, pool


@dataclass(frozen=True)
class FineTuneConfig:
    # mean over real tokens (how all-MiniLM-L6-v2 was trained); pooler = BERT dense+tanh on [CLS] (emotion-export
    # needs it) | cls
    pooling: str = param(choice("pooler", "cls", "mean"), "mean")
    dropout: float = param(number(0, 0.95), 0.1)  # before the classifier
    encoder_dropout: float = param(number(0, 0.95), 0.1)  # inside the encoder (its pretrained config has 0.1)
    # null: the encoder's recipe's (model.transformer_finetune.encoders): a base-size encoder wants a lower one
    encoder_lr: float | None = param(number(0, 1, lo_open=True), None, nullable=True)
    layer_lr_decay: float = param(number(0, 1, lo_open=True), 1.0)  # 1.0 = off
    unfreeze_layers_per_epoch: int = param(integer(0), 0)  # 0 = all layers train from the start


class FineTune(nn.Module):
    """Encoder (all weights trained) -> pooled -> dropout -> linear.

    pooling `pooler` is BERT's own head (dense + tanh on [CLS]), exactly what
    BertForSequenceClassification computes, so the model exports to it (`emotion-export`).
    """

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, dropout: float):
        super().__init__()
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise UserError(f"model.transformer_finetune.pooling: pooler needs an encoder with a pooler layer "
                            f"(BERT-like); {type(encoder).__name__} has none: use cls or mean")
        self.pooling = pooling
        self.encoder = encoder
        if pooling != "pooler" and getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(False)  # unused; DDP wants a gradient for every trainable weight
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        else:
            pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        return self.classifier(self.dropout(pooled))


def encoder_layers(encoder: nn.Module) -> list[nn.Module]:
    """The transformer blocks, bottom first (BERT-like and DistilBERT-like encoders)."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    raise UserError(f"cannot find the transformer layers of {type(encoder).__name__}; "
                    "layer_lr_decay and unfreeze_layers_per_epoch support BERT- and DistilBERT-like encoders")


def param_groups(model: FineTune, train_params, arch: FineTuneConfig) -> list[dict]:
    """The classifier at train.lr; the encoder at encoder_lr, decayed layer by layer from the top when
    layer_lr_decay < 1."""
    wd = train_params.weight_decay
    groups = decay_groups(model.classifier, train_params.lr, wd)
    decay, enc = arch.layer_lr_decay, model.encoder
    if decay == 1.0:
        return groups + decay_groups(enc, arch.encoder_lr, wd)
    layers = encoder_layers(enc)
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    for depth, layer in enumerate(reversed(layers)):
        groups += decay_groups(layer, arch.encoder_lr * decay ** depth, wd)
    rest = nn.ParameterList([p for p in enc.parameters() if id(p) not in in_layers])  # embeddings, pooler
    return groups + decay_groups(rest, arch.encoder_lr * decay ** len(layers), wd)


def unfreeze(model: FineTune, arch: FineTuneConfig, epoch: int) -> None:
    """Gradual unfreezing: the top `unfreeze_layers_per_epoch * epoch` layers train (embeddings once all do)."""
    if arch.unfreeze_layers_per_epoch == 0:
        return
    n_top = arch.unfreeze_layers_per_epoch * epoch
    layers = encoder_layers(model.encoder)
    model.encoder.requires_grad_(n_top >= len(layers))
    for layer in layers[len(layers) - min(n_top, len(layers)):]:
        layer.requires_grad_(True)


def check(arch: FineTuneConfig, world_size: int) -> None:
    if world_size > 1 and arch.unfreeze_layers_per_epoch > 0:
        raise UserError("model.transformer_finetune.unfreeze_layers_per_epoch > 0 changes which weights train "
                        "mid-run, which DDP cannot follow: use train.processes: 1 or unfreeze_layers_per_epoch: 0")


def export_blocker(arch: FineTuneConfig) -> str | None:
    if arch.pooling != "pooler":
        return (f"trained with pooling {arch.pooling!r}; a standard sequence-classification head uses BERT's "
                "pooler: retrain with model.transformer_finetune.pooling: pooler")
    return None


register(Architecture(
    name="transformer_finetune",
    config=FineTuneConfig,
    recipe={"epochs": 3, "loss": "weighted_bce"},
    encoder_recipes={"all-MiniLM-L6-v2": {"encoder_lr": 1.0e-4}, "all-mpnet-base-v2": {"encoder_lr": 5.0e-5}},
    build=lambda arch, sizes, encoder: FineTune(encoder, sizes["n_labels"], arch.pooling, arch.dropout),
    needs_encoder=lambda arch: True,
    keeps_encoder=True,
    param_groups=param_groups,
    before_epoch=unfreeze,
    check=check,
    export_blocker=export_blocker,
))
