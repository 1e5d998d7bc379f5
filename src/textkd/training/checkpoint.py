"""Resumable training checkpoints, written so that a crash at any moment leaves a usable one.

A checkpoint is a folder: `model.safetensors` (trainable weights incl. KD projections),
`optimizer.pt` and `scheduler.pt` (tensors and numbers only, loaded with `weights_only=True`),
`rng.pt`, optional extras (`average.safetensors`: the weight average of `train.ema_decay`), and
`state.json` written last. It is built in a sibling folder and swapped in by renames;
the previous checkpoint is only removed after the new one is complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from textkd.utils import atomic_write_json

STATE_FILE = "state.json"


def save_checkpoint(
    path: str | Path,
    module: torch.nn.Module,
    optimizer,
    scheduler,
    state: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write a complete checkpoint to `path` atomically; `extra(folder)` adds files (e.g. a weight average)."""
    path = Path(path)
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(_untie(weights), str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    if extra is not None:
        extra(tmp)
    atomic_write_json(tmp / STATE_FILE, state)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(path: str | Path) -> Path | None:
    """The newest complete checkpoint at `path` (or its `.old` twin after a crash mid-swap)."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_checkpoint(path: str | Path, module: torch.nn.Module, optimizer, scheduler) -> dict[str, Any] | None:
    """Restore weights, optimiser, scheduler and RNG; returns the saved training state or None."""
    found = find_checkpoint(path)
    if found is None:
        return None
    weights = load_file(str(found / "model.safetensors"))
    module.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(found / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(found / "scheduler.pt", weights_only=True))
    rng = torch.load(found / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((found / STATE_FILE).read_text(encoding="utf-8"))


def _untie(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (tied embeddings): give every tensor its own copy."""
    seen: set[int] = set()
    out = {}
    for name, tensor in weights.items():
        ptr = tensor.data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out
