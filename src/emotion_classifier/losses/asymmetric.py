"""Asymmetric loss (Ridnik et al., 2021) and focal loss, its symmetric special case."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..fields import number, param
from . import Loss, register


def asymmetric_loss(logits, y, gamma_pos: float, gamma_neg: float, clip: float, focal: bool = False):
    """Mean over labels: easy negatives, which swamp a long-tailed multi-label set, are down-weighted by
    p^gamma_neg and dropped below `clip`; positives by (1-p)^gamma_pos. focal=True is focal loss (both gammas
    equal, no clip) written as before: BCE x (1 - p_t)^gamma."""
    p = torch.sigmoid(logits)
    if focal:
        ce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (ce * (1 - (p * y + (1 - p) * (1 - y))) ** gamma_pos).mean()
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    pos = y * (1 - p) ** gamma_pos * nn.functional.logsigmoid(logits)
    neg = (1 - y) * p_neg ** gamma_neg * torch.log((1 - p_neg).clamp(min=1e-8))
    return -(pos + neg).mean()


@dataclass(frozen=True)
class AsymmetricConfig:
    gamma_neg: float = param(number(0, 10), 4.0)  # easy negatives down-weighted by p^4 ...
    gamma_pos: float = param(number(0, 10), 0.0)
    clip: float = param(number(0, 0.5), 0.05)  # ... and ignored below p = 0.05


@dataclass(frozen=True)
class FocalConfig:
    gamma: float = param(number(0, 10), 2.0)


register(Loss(
    "asl",
    build=lambda s, y_train, device: partial(asymmetric_loss, gamma_pos=s.gamma_pos, gamma_neg=s.gamma_neg,
                                             clip=s.clip),
    config=AsymmetricConfig,
))
register(Loss(
    "focal",
    build=lambda s, y_train, device: partial(asymmetric_loss, gamma_pos=s.gamma, gamma_neg=s.gamma, clip=0.0,
                                             focal=True),
    config=FocalConfig,
))
