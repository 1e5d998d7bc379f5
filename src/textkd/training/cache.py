"""Teacher-output cache: run the teacher once per (teacher, split, tokenisation), reuse it everywhere.

A grid of students x methods needs the same teacher logits over the same training texts again and again.
They are computed once, stored as `.npy` files under the teacher's folder, and memory-mapped by every
later run, so a KD epoch costs about what a no-KD epoch costs.

Layout: `<teacher_dir>/.textkd-cache/<key>/{logits.npy, pooled.npy, meta.json}`; `meta.json` is written
last, so a folder without it is an interrupted computation and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textkd.data.batching import ModelInputs
from textkd.training.inference import forward_outputs
from textkd.utils import atomic_write_json

CACHE_DIRNAME = ".textkd-cache"
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


@dataclass
class TeacherOutputs:
    """Teacher outputs for every row of one split, in row order.

    Attributes:
        logits: (N, C) float32.
        pooled: (N, H) float32 sentence vectors, or None when not computed.
        cached: True when read from disk rather than computed in this call.
    """

    logits: np.ndarray
    pooled: np.ndarray | None = None
    cached: bool = False


def teacher_fingerprint(teacher_dir: str | Path) -> str:
    """sha256 of the teacher's weights file (memoised per path, size and mtime)."""
    weights = Path(teacher_dir) / "model.safetensors"
    stat = weights.stat()
    memo_key = (str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(weights, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FINGERPRINTS[memo_key] = digest.hexdigest()[:16]
    return _FINGERPRINTS[memo_key]


def cache_key(teacher_dir: str | Path, inputs: ModelInputs, prefix: str) -> str:
    return f"{teacher_fingerprint(teacher_dir)}-{inputs.streams[prefix].key}"


def teacher_outputs(
    teacher: nn.Module,
    inputs: ModelInputs,
    *,
    teacher_dir: str | Path | None,
    prefix: str = "",
    need_pooled: bool = False,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    autocast=None,
) -> TeacherOutputs:
    """Teacher logits (and pooled vectors) for every row of `inputs`, from the cache when possible.

    Args:
        teacher: the fine-tuned teacher (only run on a cache miss).
        inputs: the split; `prefix` names the stream tokenised for the teacher.
        teacher_dir: the teacher's saved folder; None disables the cache (always computed).
        need_pooled: also return (N, H) pooled sentence vectors.

    Example:
        >>> out = teacher_outputs(teacher, train_inputs, teacher_dir="runs/teacher")  # doctest: +SKIP
        >>> out.logits.shape  # (N, C)
    """
    folder = None
    if teacher_dir is not None:
        folder = Path(teacher_dir) / CACHE_DIRNAME / cache_key(teacher_dir, inputs, prefix)
        found = _read(folder, need_pooled)
        if found is not None:
            return found
    fields = ("logits", "pooled") if need_pooled else ("logits",)
    values = forward_outputs(teacher, inputs, batch_size, device=device, fields=fields, prefix=prefix,
                             autocast=autocast)
    result = TeacherOutputs(logits=values["logits"], pooled=values.get("pooled"))
    if folder is not None:
        _write(folder, result)
    return result


def _read(folder: Path, need_pooled: bool) -> TeacherOutputs | None:
    if not (folder / "meta.json").is_file():
        return None
    if need_pooled and not (folder / "pooled.npy").is_file():
        return None
    logits = np.load(folder / "logits.npy", mmap_mode="r")
    pooled = np.load(folder / "pooled.npy", mmap_mode="r") if need_pooled else None
    return TeacherOutputs(logits=logits, pooled=pooled, cached=True)


def _write(folder: Path, outputs: TeacherOutputs) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "logits.npy", outputs.logits)
    if outputs.pooled is not None:
        np.save(tmp / "pooled.npy", outputs.pooled)
    meta = {"rows": int(outputs.logits.shape[0]), "classes": int(outputs.logits.shape[1]),
            "pooled": outputs.pooled is not None}
    atomic_write_json(tmp / "meta.json", meta)
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():  # moved aside, not deleted in place: a kill never leaves meta.json without its arrays
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def clear_cache(teacher_dir: str | Path) -> None:
    """Delete every cached output of a teacher."""
    shutil.rmtree(Path(teacher_dir) / CACHE_DIRNAME, ignore_errors=True)


def read_meta(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
