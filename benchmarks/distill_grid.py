"""Benchmark: train (or reuse) a teacher, distil a grid of students x methods, record every test figure.

Each record names its dataset, teacher, student preset, initialisation and method, and stores accuracy and
macro-F1 (fractions), wall time and the machine. Model selection is on the validation split only.

Usage:
    python benchmarks/distill_grid.py recipes/banking77.yaml --data-dir ../shared/data --name banking77_grid \
        --student "tinybert-4l-312:none,soft" --student "bilstm:none,soft:lr=1e-3" \
        --student "tinybert-4l-312@teacher-layers:soft:lr=1e-4,epochs=10"

A student spec is `PRESET[@INIT][:METHODS][:KEY=VALUE,...]`; bare keys go to `student.train.*`,
dotted keys (`student.tokenizer=wordpiece`, `distill.alpha=0.5`) anywhere in the config.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_results  # noqa: E402

import textkd  # noqa: E402
from textkd.cli import quiet_transformers  # noqa: E402
from textkd.config import dotted_to_nested, from_dict, to_dict  # noqa: E402


def parse_spec(spec: str) -> tuple[str, str, list[str], dict[str, str]]:
    parts = spec.split(":")
    preset, _, init = parts[0].partition("@")
    methods = parts[1].split(",") if len(parts) > 1 and parts[1] else ["none", "soft"]
    overrides: dict[str, str] = {}
    if len(parts) > 2 and parts[2]:
        for item in parts[2].split(","):
            key, _, value = item.partition("=")
            overrides[key if "." in key else f"student.train.{key}"] = value
    return preset, init or "random", methods, overrides


def apply(cfg: textkd.Config, overrides: dict[str, str]) -> textkd.Config:
    return from_dict(type(cfg), dotted_to_nested(overrides), base=copy.deepcopy(cfg))


def record(cfg, splits, result, teacher_name: str, label: str, init: str | None, method: str | None) -> dict:
    m = result.test_metrics
    refit = result.fit.best_metrics.get("refit")  # a refit teacher: wall time counts both runs
    if refit:
        chosen = json.loads((result.output_dir / refit["selection_dir"] / "eval_test.json").read_text())
        refit = {**refit, "selection_test_accuracy": chosen["accuracy"], "selection_test_macro_f1": chosen["macro_f1"]}
    wall = result.fit.wall_s + (refit["selection_wall_s"] if refit else 0.0)
    return {
        "dataset": splits.name,
        "partial_train": splits.partial,
        "teacher": teacher_name,
        "student": None if method is None else cfg.student.preset,
        "init": init,
        "method": method if method is not None else "teacher",
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "weighted_f1": m["weighted_f1"],
        "agreement_with_teacher": m.get("agreement_with_teacher"),
        "test_rows": m["rows"],
        "val_accuracy": result.fit.best_metrics.get("val_accuracy"),
        "val_macro_f1": result.fit.best_metrics.get("val_macro_f1"),
        "best_epoch": result.fit.best_epoch,
        "epochs_run": result.fit.epochs_run,
        "wall_s": round(wall, 2),
        "params": result.params,
        "size_mb": round(result.size_mb, 2),
        "machine": label,
        "train": to_dict(cfg.teacher.train if method is None else cfg.student.train),
        "student_config": None if method is None else {k: v for k, v in to_dict(cfg.student).items() if k != "train"},
        "distill": None if method in (None, "none") else to_dict(cfg.distill),
        "dir": str(result.output_dir),
        "refit": refit,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe")
    ap.add_argument("--data-dir")
    ap.add_argument("--name", required=True, help="results file name (benchmarks/results/<name>.json)")
    ap.add_argument("--out", default=None, help="run folder (default runs/bench/<name>)")
    ap.add_argument("--teacher", help="reuse this trained teacher instead of training one")
    ap.add_argument("--student", action="append", default=[], help="student spec (repeatable)")
    ap.add_argument("--set", action="append", default=[], help="global override KEY=VALUE (repeatable)")
    ap.add_argument("--results-dir", default=None)
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue the teacher's run (a refit skips a finished "
        "selection run) and unfinished students from their "
        "checkpoints; a finished student is reused, not "
        "trained again",
    )
    args = ap.parse_args()
    quiet_transformers()

    overrides = dict(item.split("=", 1) for item in args.set)
    if args.data_dir:
        overrides["data.data_dir"] = args.data_dir
    cfg = textkd.load_config(args.recipe, overrides)
    out = Path(args.out or f"runs/bench/{args.name}")
    splits = textkd.load_data(cfg.data)
    label = machine()["label"]
    records: list[dict] = []
    started = time.perf_counter()

    def save() -> None:  # after every run: a run cut short still leaves its figures
        write_results(
            args.name,
            {
                "dataset": splits.name,
                "notes": splits.notes,
                "recipe": args.recipe,
                "teacher_dir": str(teacher_dir),
                "overrides": overrides,
                "total_wall_s": round(time.perf_counter() - started, 1),
                "runs": records,
            },
            args.results_dir,
        )

    teacher_dir = Path(args.teacher) if args.teacher else out / "teacher"
    if not args.teacher:
        result = textkd.train_teacher(cfg, teacher_dir, splits=splits, resume=args.resume)
        records.append(record(cfg, splits, result, cfg.teacher.backbone, label, None, None))
        _show(records[-1])
        save()
    for spec in args.student:
        preset, init, methods, extra = parse_spec(spec)
        scfg = apply(cfg, {"student.preset": preset, "student.init": init, **extra})
        grid = out / "students" / (preset if init == "random" else f"{preset}@{init}")
        for result in textkd.distill(scfg, teacher_dir, grid, methods=methods, splits=splits, resume=args.resume):
            records.append(record(scfg, splits, result, cfg.teacher.backbone, label, init, result.method))
            _show(records[-1])
            save()


def _show(r: dict) -> None:
    who = "teacher" if r["student"] is None else f"{r['student']}@{r['init']} / {r['method']}"
    print(
        f"{r['dataset']:10s} {who:40s} acc {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
        f"{r['wall_s']:.0f} s  (best epoch {r['best_epoch']})",
        flush=True,
    )


if __name__ == "__main__":
    main()
