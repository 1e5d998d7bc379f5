"""Batched forward passes over a whole split, in length-sorted batches, results in input order."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from textkd.data.batching import ModelInputs, eval_batches


@torch.no_grad()  # not inference_mode: its tensors must never reach autograd (LSTM weights under DDP)
def forward_outputs(
    model: nn.Module,
    inputs: ModelInputs,
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    fields: tuple[str, ...] = ("logits",),
    prefix: str = "",
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> dict[str, np.ndarray]:
    """Run `model` over every row of `inputs`; returns {field: (N, ...) float32} in input order.

    Args:
        fields: `ClassifierOutput` fields to collect, e.g. ("logits", "pooled").
        prefix: the input stream to feed ("" the model's own, "teacher_" the teacher's).
        autocast: a context-manager factory (e.g. `accelerator.autocast`); fp32 when None.
    """
    was_training = model.training
    model.eval()
    if device is not None:
        model.to(device)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    results: dict[str, np.ndarray] = {}
    pending: list[tuple[np.ndarray, dict[str, torch.Tensor]]] = []
    for indices in eval_batches(inputs.streams[prefix].lengths, batch_size):
        batch = inputs.batch(indices)
        with autocast() if autocast is not None else contextlib.nullcontext():
            out = model(
                input_ids=batch[f"{prefix}input_ids"].to(device),
                attention_mask=batch[f"{prefix}attention_mask"].to(device),
            )
        pending.append((indices, {name: getattr(out, name).float() for name in fields}))
    for indices, values in pending:  # copy to the host once the device has all the work queued
        for name, tensor in values.items():
            if name not in results:
                results[name] = np.zeros((len(inputs), *tensor.shape[1:]), dtype=np.float32)
            results[name][indices] = tensor.cpu().numpy()
    model.train(was_training)
    return results


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, numerically stable."""
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)
