"""Distribution-balanced loss (Wu et al., 2020), without its focal term, as in the authors' code."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..fields import number, param
from . import Loss, label_counts, register


def distribution_balanced_loss(logits, y, label_counts, n_train: int, neg_scale: float, bias_scale: float):
    """Re-balanced weights: a label's share of an example's inverse label frequencies, smoothed into [0.1, 1.1],
    so an example's rare labels count more than its common ones. Negative-tolerant regularisation: negatives'
    logits are scaled by neg_scale (their loss divided by it) and every logit is shifted by bias_scale x the
    label's prior log-odds / neg_scale, so the many easy negatives stop pushing rare labels down. The shift is
    the loss's only: the model's logits stay uncalibrated by it, per label, which the per-label thresholds
    absorb."""
    inv = 1 / label_counts
    share = inv / (y * inv).sum(1, keepdim=True).clamp(min=1e-12)
    weight = torch.sigmoid(10 * (share - 0.2)) + 0.1  # the paper's mapping: alpha 0.1, beta 10, mu 0.2
    z = logits - torch.log(n_train / label_counts - 1).clamp(min=-30, max=30) * bias_scale / neg_scale
    pos = y * nn.functional.softplus(-z)
    neg = (1 - y) * nn.functional.softplus(neg_scale * z) / neg_scale
    return (weight * (pos + neg)).mean()


@dataclass(frozen=True)
class DistributionBalancedConfig:
    neg_scale: float = param(number(0, 100, lo_open=True), 2.0)  # negatives' logits x this (the paper's lambda) ...
    bias_scale: float = param(number(0, 10), 0.05)  # ... and shifted by this x the label's prior log-odds (kappa)


def build(settings: DistributionBalancedConfig, y_train, device):
    counts = torch.tensor(label_counts(y_train), dtype=torch.float32, device=device)
    return partial(distribution_balanced_loss, label_counts=counts, n_train=len(y_train),
                   neg_scale=settings.neg_scale, bias_scale=settings.bias_scale)


register(Loss(
    "distribution_balanced",
    build=build,
    config=DistributionBalancedConfig,
))
