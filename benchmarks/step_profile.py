"""Benchmark: where a training step's time goes, textkd's loop against a bare PyTorch loop on the same model.

Trains the banking77 teacher and the `tinybert-4l-312` student (soft, with the cache, and none) for `--steps`
optimiser steps each under cProfile, and times a bare loop (forward, cross-entropy, backward, clipping, fused
AdamW on one fixed batch) of both shapes in fp32 and bf16 autocast. On a GPU the gap between the two is
per-step overhead (host synchronisation, data handling, Python); the bare loop is what eager PyTorch can do.
Prints the heaviest functions of each profile and writes ms/step figures to JSON.

Usage:
    python benchmarks/step_profile.py --minilm .gpu/minilm --data-dir .gpu/data --steps 300
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MINILM_JOBS, machine, minilm_overrides, write_results  # noqa: E402

import textkd  # noqa: E402
from textkd.cli import quiet_transformers  # noqa: E402
from textkd.models.classifier import TextkdClassifier  # noqa: E402

SHAPES = {
    "tinybert-4l-312": {
        "hidden_size": 312,
        "num_hidden_layers": 4,
        "num_attention_heads": 12,
        "intermediate_size": 1200,
    },
    "minilm-l6": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
}


def profiled(title: str, fn, top: int):
    profile = cProfile.Profile()
    profile.enable()
    result = fn()
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
    print(f"=== {title}\n{text.getvalue()}", flush=True)
    return result


def ms_per_step(result) -> float:
    """Training time per optimiser step of a one-epoch textkd run (its first metrics.jsonl row)."""
    row = result.fit.history[0]
    return row["train_s"] / row["step"] * 1e3


def bare_loop(shape: dict, device: str, steps: int, bf16: bool, length: int = 24) -> float:
    """ms per step of forward + CE + backward + clip + fused AdamW on one fixed (32, length) batch."""
    torch.manual_seed(0)
    model = TextkdClassifier.from_scratch({**shape, "vocab_size": 30522}, 77).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(5, 30000, (32, length), device=device)
    mask, labels = torch.ones_like(ids), torch.randint(0, 77, (32,), device=device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids, attention_mask=mask).logits
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True, help="local all-MiniLM-L6-v2 folder")
    ap.add_argument("--data-dir", required=True, help="folder holding banking77/")
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps per profiled job and per bare loop")
    ap.add_argument("--precision", default="no", help="textkd mixed precision: no (fp32) | bf16 | auto")
    ap.add_argument("--top", type=int, default=25, help="functions printed per profile")
    ap.add_argument("--out", default="runs/step_profile")
    ap.add_argument("--name", default="step_profile")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()
    quiet_transformers()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = minilm_overrides(args, epochs=1, max_steps=args.steps)
    cfg = textkd.load_config("recipes/banking77.yaml", overrides)
    splits = textkd.load_data(cfg.data)
    out = Path(args.out)
    figures: dict[str, float] = {}
    teacher = profiled("teacher", lambda: textkd.train_teacher(cfg, out / "teacher", splits=splits), args.top)
    figures["textkd_teacher_ms_per_step"] = ms_per_step(teacher)
    for method in ("soft", "none"):
        [student] = profiled(
            f"student {method}",
            lambda m=method: textkd.distill(cfg, out / "teacher", out / "students", methods=[m], splits=splits),
            args.top,
        )
        figures[f"textkd_student_{method}_ms_per_step"] = ms_per_step(student)
    for name, shape in SHAPES.items():
        for bf16 in (False, True):
            key = f"bare_{name}_{'bf16' if bf16 else 'fp32'}_ms_per_step"
            figures[key] = bare_loop(shape, device, args.steps, bf16)
    for key, value in figures.items():
        print(f"{key:45s} {value:8.2f}")
    write_results(
        args.name,
        {
            **MINILM_JOBS,
            "steps": args.steps,
            "precision": args.precision,
            "device": machine()["label"],
            **{k: round(v, 3) for k, v in figures.items()},
        },
        args.results_dir,
    )


if __name__ == "__main__":
    main()
