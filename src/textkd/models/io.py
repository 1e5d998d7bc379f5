"""Saving and loading model directories: safetensors only, written atomically, pickle refused by default.

A saved directory holds `config.json`, `model.safetensors`, the tokenizer files and the marker
`textkd_model.json` ({"format": 1, "kind": "teacher" | "student", "files": [...], ...}). Everything is
serialised into a temporary sibling directory first. A new target is that directory renamed into place
(atomic). An existing target may hold other files (a run's `metrics.jsonl`, `checkpoint/`), which are
kept: the marker is removed, the new files are renamed in one by one, files of the previous save that
the new one lacks are deleted, and the marker is written last. A `.textkd_saving` sentinel marks the
directory meanwhile, and `load_model` refuses a directory that has it, so a half-written model is never
taken for a finished one.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from textkd.errors import ModelLoadError
from textkd.models.backbones import load_tokenizer
from textkd.utils import atomic_write_json, require_model_dir

MARKER = "textkd_model.json"
SAVING = ".textkd_saving"  # present in a target directory while save_model is replacing its files
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PICKLE_WEIGHTS = ("pytorch_model.bin", "*.pt", "*.pth", "*.ckpt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx")


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    path: str | Path,
    extra: dict[str, Any] | None = None,
    kind: str | None = None,
) -> Path:
    """Write `model` (safetensors) and `tokenizer` to the directory `path` (see the module docstring).

    Other files already in `path` (not written by an earlier `save_model`) are left alone.

    Args:
        kind: "teacher" or "student"; default `extra["kind"]`, then the role the builders recorded in
            `model.config.textkd_role`, then "student".
        extra: more facts for the marker file (e.g. {"preset": "bilstm", "dataset": "banking77"}).

    Example:
        >>> save_model(model, tokenizer, "runs/bank/student", extra={"preset": "bilstm"})  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    kind = kind or extra.pop("kind", None) or getattr(model.config, "textkd_role", None) or "student"
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.saving-"))
    try:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        files = sorted(p.name for p in staging.iterdir())
        atomic_write_json(staging / MARKER, {"format": FORMAT_VERSION, "kind": kind, "files": files, **extra})
        if path.exists():
            _merge_into(staging, path, files)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _merge_into(staging: Path, target: Path, files: list[str]) -> None:
    """Move the staged files into an existing `target`, keeping its unrelated files; marker last."""
    if not target.is_dir():
        raise ModelLoadError("cannot save a model here: a file is in the way", path=target)
    previous = read_marker(target) or {}
    (target / SAVING).touch()
    (target / MARKER).unlink(missing_ok=True)
    for name in files:
        destination = target / name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(staging / name, destination)
    for name in set(previous.get("files", [])) - set(files) - {MARKER, SAVING}:
        stale = target / name
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
    os.replace(staging / MARKER, target / MARKER)
    (target / SAVING).unlink()


def load_model(path: str | Path, trust_pickle: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved model directory (textkd or any Hugging Face sequence classifier) in eval mode.

    Pickle checkpoints (`pytorch_model.bin`, `*.pt`) can run arbitrary code when loaded, so a directory
    that has only those is refused unless `trust_pickle=True`.

    Example:
        >>> model, tokenizer = load_model("runs/banking77/student")  # doctest: +SKIP
    """
    path = require_model_dir(path)
    if (path / SAVING).exists():
        raise ModelLoadError(
            "the model directory is being written, or a save into it was interrupted", path=path, hint="save it again"
        )
    if not (path / WEIGHTS).is_file():
        pickles = sorted(p for pattern in PICKLE_WEIGHTS for p in path.glob(pattern))
        if not pickles:
            raise ModelLoadError(f"no {WEIGHTS} in the model directory", path=path)
        if not trust_pickle:
            raise ModelLoadError(
                f"only a pickle checkpoint ({pickles[0].name}) and no {WEIGHTS}: loading pickle can run arbitrary code",
                path=path,
                hint="re-save it as safetensors, or pass trust_pickle=True if you trust its source",
            )
        model = _load_pickle(path, pickles[0])
    else:
        model = _load_pretrained(path, use_safetensors=True)
    return model.eval(), load_tokenizer(str(path))


def _load_pretrained(path: Path, use_safetensors: bool) -> PreTrainedModel:
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=use_safetensors)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load the model: {err}", path=path) from None
    _realign(model)
    return model


def _realign(model: nn.Module) -> None:
    """Copy CPU tensors that the loader left at unaligned addresses into fresh, 64-byte aligned memory.

    Tensors read from a file can sit at any offset of its buffer, and CPU BLAS kernels choose their code
    path by alignment: a loaded BiLSTM gave logits 1 ulp away from the model it was saved from (one thread).
    """
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
            tensor.data = tensor.data.clone()


def _load_pickle(path: Path, checkpoint: Path) -> PreTrainedModel:
    if checkpoint.name == "pytorch_model.bin":
        return _load_pretrained(path, use_safetensors=False)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if isinstance(state, nn.Module):
        return state
    try:
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path))
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot build the model from config.json: {err}", path=path) from None
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """The `textkd_model.json` facts of a saved directory, or None when it was not saved by textkd."""
    marker = Path(path) / MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    seen: dict[int, int] = {}
    for param in model.parameters():
        if param.requires_grad or not trainable_only:
            seen[id(param)] = param.numel()
    return sum(seen.values())


def model_size_mb(path: str | Path) -> float:
    """Size on disk of a model's weights in MiB (2**20 bytes): a weights file, or a directory's weight files.

    Tokenizer and config files are not counted, so the number compares architectures, not vocab files.

    Example:
        >>> model_size_mb("runs/banking77/student")  # doctest: +SKIP
        18.4
    """
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    if not path.is_dir():
        raise ModelLoadError("no such model file or directory", path=path)
    files = [p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    # A directory holding both safetensors and an export (.onnx) describes one model: count the former.
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in safetensors or files) / 2**20
