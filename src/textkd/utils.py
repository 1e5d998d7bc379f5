"""Small shared helpers: atomic writes, seeding, JSON lines, the results console, the model-folder check."""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textkd.errors import ModelLoadError

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 160  # columns of tables written to a file or a pipe


def results_console() -> Console:
    """A rich Console for results on stdout: the terminal's width, or `PIPED_WIDTH` columns when stdout is a
    file or a pipe, where rich would assume 80 and cut table cells to "..."; `$COLUMNS` wins when set."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPED_WIDTH if piped else None)


def cache_root() -> Path:
    """textkd's user cache: `$TEXTKD_CACHE_DIR`, else `$XDG_CACHE_HOME/textkd`, else `~/.cache/textkd`."""
    root = os.environ.get("TEXTKD_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "textkd"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename.

    A crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line; a line is one small write, so a crash cannot leave half of one visible."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)  # one write call: an O_APPEND line is never interleaved
        if written != len(line):
            os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a torn last line from a crash mid-write: ignore it
                break
            raise
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def require_model_dir(path: str | Path) -> Path:
    """`path` as a Path, or a ModelLoadError when there is no such directory (torch-free, for ONNX folders too)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError("no such model directory", path=path, hint="train or save a model there first")
    return path
