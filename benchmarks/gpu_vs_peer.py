"""Benchmark: textkd against the peer (the first tutorial's HF-Trainer pipeline), side by side, one call.

Both run the same three jobs on the same machine, one after the other: the all-MiniLM-L6-v2 teacher (10
epochs, lr 1e-4, batch 32), the `tinybert-4l-312` student (random init, 20 epochs, lr 3e-4, batch 32) with soft
KD (T=4, alpha 0.7), and the same student without KD. textkd uses its recipe (`recipes/banking77.yaml`):
length-bucketed batches, cached teacher logits, model selection on a validation carve-out (9,002 training
rows); the peer trains on all 10,003 rows and selects on test, as the tutorial does. Wall time counts every
job end to end (data, tokenisation, training, evaluation), and the speed-up is peer seconds / textkd seconds
(with `--repeats N`, the ratio of the two medians; every repeat's own ratio is recorded too).

Usage (GPU machine; a local all-MiniLM-L6-v2 folder and banking77):
    python benchmarks/gpu_vs_peer.py --minilm .gpu/minilm --data-dir .gpu/data --peer .gpu/peer_seed1.py
    python benchmarks/gpu_vs_peer.py ... --quick     # a smoke run: a few steps of each job (CPU is fine)
    python benchmarks/gpu_vs_peer.py ... --teacher-epochs 1 --student-epochs 1   # a short CPU comparison
    python benchmarks/gpu_vs_peer.py ... --repeats 3   # medians of three side-by-side runs, order flipped each time
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MINILM_JOBS, machine, minilm_overrides, write_results  # noqa: E402

import textkd  # noqa: E402
from textkd.cli import quiet_transformers  # noqa: E402

JOBS = ("teacher", "student_kd", "student_nokd")


def run_textkd(args) -> dict:
    overrides = {**minilm_overrides(args), "output_dir": args.out}
    if args.teacher_epochs:
        overrides["teacher.train.epochs"] = str(args.teacher_epochs)
    if args.student_epochs:
        overrides["student.train.epochs"] = str(args.student_epochs)
    if args.quick:
        overrides.update(minilm_overrides(args, max_steps=5, epochs=1))
    cfg = textkd.load_config("recipes/banking77.yaml", overrides)
    jobs = {}
    started = time.perf_counter()
    splits = textkd.load_data(cfg.data)
    teacher_dir = Path(args.out) / "textkd" / "teacher"
    result = textkd.train_teacher(cfg, teacher_dir, splits=splits)
    jobs["teacher"] = {
        "accuracy": result.test_metrics["accuracy"],
        "macro_f1": result.test_metrics["macro_f1"],
        "wall_s": time.perf_counter() - started,
    }
    for method, name in (("soft", "student_kd"), ("none", "student_nokd")):
        began = time.perf_counter()
        [res] = textkd.distill(
            cfg, teacher_dir, Path(args.out) / "textkd" / "students", methods=[method], splits=splits
        )
        jobs[name] = {
            "accuracy": res.test_metrics["accuracy"],
            "macro_f1": res.test_metrics["macro_f1"],
            "wall_s": time.perf_counter() - began,
        }
    jobs["total_wall_s"] = time.perf_counter() - started
    return jobs


def run_peer(args) -> dict:
    out = Path(args.out) / "peer"
    command = [
        sys.executable,
        args.peer,
        "--teacher",
        args.minilm,
        "--data",
        str(Path(args.data_dir) / "banking77"),
        "--out",
        str(out),
        "--teacher-lr",
        "1e-4",
    ] + (["--quick"] if args.quick else [])
    if args.teacher_epochs:
        command += ["--teacher-epochs", str(args.teacher_epochs)]
    if args.student_epochs:
        command += ["--student-epochs", str(args.student_epochs)]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    total = time.perf_counter() - started
    raw = json.loads((out / "peer_results.json").read_text())
    jobs = {
        name: {"accuracy": raw[name]["accuracy"], "macro_f1": raw[name]["f1"], "wall_s": raw[name]["wall_s"]}
        for name in JOBS
    }
    jobs["total_wall_s"] = total
    return jobs


def median_jobs(repeats: list[dict]) -> dict:
    """Per job, the median wall time over the repeats, and the accuracy of the first repeat."""
    out = {}
    for job in JOBS:
        rows = [r[job] for r in repeats]
        out[job] = {
            "accuracy": rows[0]["accuracy"],
            "macro_f1": rows[0]["macro_f1"],
            "wall_s": statistics.median(r["wall_s"] for r in rows),
            "same_accuracy_every_repeat": len({r["accuracy"] for r in rows}) == 1,
        }
    out["total_wall_s"] = statistics.median(r["total_wall_s"] for r in repeats)
    return out


def run_repeats(args) -> tuple[dict, list[dict]]:
    """Both pipelines `args.repeats` times, the order flipped at every repeat (textkd, peer; then peer, textkd; ...)
    so neither always runs on a warmer machine; each repeat writes under `<out>/repeat<i>`."""
    order = args.order.split(",")
    if sorted(order) != ["peer", "textkd"]:
        raise SystemExit(f"--order must name textkd and peer once each, got {args.order!r}")
    repeats = []
    for i in range(args.repeats):
        run_args = argparse.Namespace(**{**vars(args), "out": str(Path(args.out) / f"repeat{i}")})
        runs = {}
        for who in order if i % 2 == 0 else order[::-1]:
            runs[who] = run_textkd(run_args) if who == "textkd" else run_peer(run_args)
            print(f"repeat {i + 1}/{args.repeats}, {who}: {runs[who]['total_wall_s']:.1f} s", flush=True)
        # --quick runs different step counts in the two pipelines: their times compare nothing
        runs["speedup"] = None if args.quick else runs["peer"]["total_wall_s"] / runs["textkd"]["total_wall_s"]
        repeats.append(runs)
    medians = {who: median_jobs([r[who] for r in repeats]) for who in ("textkd", "peer")}
    return medians, repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True, help="local all-MiniLM-L6-v2 folder")
    ap.add_argument("--data-dir", required=True, help="folder holding banking77/")
    ap.add_argument("--peer", default="../shared/bench/peer_seed1.py", help="the peer script")
    ap.add_argument("--out", default="runs/gpu_vs_peer")
    ap.add_argument("--precision", default="no", help="textkd mixed precision: no (fp32) | bf16 | auto")
    ap.add_argument("--order", default="textkd,peer", help="which pipeline runs first (flipped at every repeat)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run both pipelines this many times; times are medians, the speed-up their ratio",
    )
    ap.add_argument("--quick", action="store_true", help="a few steps per job: checks the script, not the speed")
    ap.add_argument("--teacher-epochs", type=int, help="both pipelines (default: the recipe's 10, the peer's 10)")
    ap.add_argument("--student-epochs", type=int, help="both pipelines (default: the recipe's 20, the peer's 20)")
    ap.add_argument("--name", default="gpu_vs_peer")
    ap.add_argument("--results-dir", default=None, help="where the JSON goes (default benchmarks/results)")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    quiet_transformers()
    runs, repeats = run_repeats(args)
    speedup = runs["peer"]["total_wall_s"] / runs["textkd"]["total_wall_s"]
    label = "median " if args.repeats > 1 else ""
    print(f"{'job':14s} {'textkd acc':>10s} {'peer acc':>9s} {label + 'textkd s':>16s} {label + 'peer s':>14s}")
    for job in JOBS:
        t, p = runs["textkd"][job], runs["peer"][job]
        print(f"{job:14s} {t['accuracy']:10.4f} {p['accuracy']:9.4f} {t['wall_s']:16.1f} {p['wall_s']:14.1f}")
    print(
        f"total ({label.strip() or 'one run'}): textkd {runs['textkd']['total_wall_s']:.1f} s, "
        f"peer {runs['peer']['total_wall_s']:.1f} s, "
        + (
            "--quick runs different step counts: no speed-up is computed"
            if args.quick
            else f"speed-up {speedup:.2f}x (target >= 5x; per repeat: "
            + ", ".join(f"{r['speedup']:.2f}x" for r in repeats)
            + ")"
        )
    )
    if args.quick:  # a smoke run checks that both pipelines run; its times compare nothing
        speedup = None
    write_results(
        args.name,
        {
            **MINILM_JOBS,
            "quick": args.quick,
            "repeats": args.repeats,
            "runs": runs,
            "per_repeat": repeats,
            "teacher_epochs": args.teacher_epochs or 10,
            "student_epochs": args.student_epochs or 20,
            "speedup": speedup,
            "wall_s": runs["textkd"]["total_wall_s"],
            "accuracy": runs["textkd"]["student_kd"]["accuracy"],
            "macro_f1": runs["textkd"]["student_kd"]["macro_f1"],
            "device": machine()["label"],
        },
        args.results_dir,
    )


if __name__ == "__main__":
    main()
