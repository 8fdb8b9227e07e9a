"""Asymmetric loss (Ridnik et al., 2021) and focal loss, its symmetric special case."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ...fields import number
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


register(Loss(
    "asl",
    build=lambda s, y_train, device: partial(asymmetric_loss, gamma_pos=s["gamma_pos"], gamma_neg=s["gamma_neg"],
                                             clip=s["clip"]),
    schema={"gamma_neg": number(0, 10), "gamma_pos": number(0, 10), "clip": number(0, 0.5)},
))
register(Loss(
    "focal",
    build=lambda s, y_train, device: partial(asymmetric_loss, gamma_pos=s["gamma"], gamma_neg=s["gamma"], clip=0.0,
                                             focal=True),
    schema={"gamma": number(0, 10)},
))
