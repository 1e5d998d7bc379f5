"""Shared helpers of the benchmark scripts: machine description, result records, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    info["label"] = info.get("gpu") or f"CPU x{os.cpu_count()}"
    return info


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# Read once, when a benchmark script starts: a long run must name the code it ran, not wherever HEAD has moved to
# by the time it writes its record.
COMMIT_AT_START = git_commit()


def write_results(name: str, payload: dict[str, Any], results_dir: str | Path | None = None) -> Path:
    """Write `<results_dir>/<name>.json` and print where it went."""
    folder = Path(results_dir) if results_dir else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": COMMIT_AT_START,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **payload,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"results -> {path}")
    return path


# What the MiniLM scripts' records measure: the first tutorial's three jobs on banking77.
MINILM_JOBS = {"dataset": "banking77", "teacher": "minilm-l6", "student": "tinybert-4l-312", "method": "soft and none"}


def minilm_overrides(args: Any, **train: Any) -> dict[str, str]:
    """The banking77 recipe's overrides shared by the MiniLM scripts: `args.data_dir` and `args.minilm`, no
    progress bars and `args.precision`, plus `train` keys (e.g. epochs=1) for both the teacher and the student."""
    train = {"progress": "false", "mixed_precision": args.precision, **train}
    overrides = {"data.data_dir": args.data_dir, "teacher.backbone": args.minilm}
    for role in ("teacher", "student"):
        overrides.update({f"{role}.train.{key}": str(value) for key, value in train.items()})
    return overrides
