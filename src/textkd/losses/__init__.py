"""Distillation losses: pure tensor functions (`functional`) composed into named weighted sums (`composite`).

Example:
    >>> from textkd.losses import build_loss
    >>> build_loss("soft")
    0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy
"""

from __future__ import annotations

from textkd.losses.composite import LOSS_METHODS, LossOutput, LossTerm, WeightedSumLoss, build_loss
from textkd.losses.functional import (
    attention_mse,
    cross_entropy,
    hard_label_ce,
    hidden_mse,
    kd_kl_div,
    kd_logit_mse,
    layer_attention_mse,
    layer_hidden_mse,
    layer_map,
    soft_targets,
)

__all__ = [
    "LOSS_METHODS",
    "LossOutput",
    "LossTerm",
    "WeightedSumLoss",
    "attention_mse",
    "build_loss",
    "cross_entropy",
    "hard_label_ce",
    "hidden_mse",
    "kd_kl_div",
    "kd_logit_mse",
    "layer_attention_mse",
    "layer_hidden_mse",
    "layer_map",
    "soft_targets",
]
