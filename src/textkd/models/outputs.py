"""The one output contract between models, losses and the trainer.

Every textkd model (teacher, transformer student, BiLSTM student) returns a `ClassifierOutput`. It is a
transformers `ModelOutput`, so `pipeline()` and `outputs["logits"]` work, and losses read typed fields
instead of free-form dict keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class ClassifierOutput(ModelOutput):
    """Outputs of a textkd classifier.

    Attributes:
        loss: cross-entropy on `labels` when labels were given, else None.
        logits: (B, C) unnormalised class scores.
        pooled: (B, H) the sentence vector the head reads (masked mean or [CLS], or the BiLSTM pooling).
        hidden_states: tuple of (B, L, H) per layer, embeddings first, when asked for.
        attentions: tuple of (B, heads, L, L) per layer (after softmax), when asked for.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
