"""Record a finished `textkd run` in benchmarks/results/: one record per model, plus the run's report files.

Each record names the dataset, teacher, student preset and method and stores accuracy and macro-F1
(fractions), training wall time, size, CPU latency (PyTorch fp32 and ONNX int8, 1 thread, batch 1, p50) and
the latency ratio against the teacher's PyTorch fp32. The run folder's results.json, report.md and
report.html are copied to `benchmarks/results/<name>/`.

Usage:
    python benchmarks/record_run.py runs/b77/banking77 --name cpu_banking77_run --note "3 student epochs"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--name", required=True)
    ap.add_argument("--note", default="", help="how the run was made (overrides, machine load)")
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    teacher = results["teacher"]
    teacher_ms = teacher["latency_p50_ms_by_backend"].get("torch")
    records = []
    for row in [teacher, *results["students"]]:
        wall = None
        metrics = Path(row["dir"]) / "metrics.jsonl"
        if metrics.is_file():
            lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            wall = lines[-1].get("wall_s") if lines else None
        by_backend = row.get("latency_p50_ms_by_backend") or {}
        int8 = by_backend.get("onnx-int8")
        records.append(
            {
                "dataset": results["dataset"]["name"],
                "partial_train": results["dataset"]["partial"],
                "teacher": teacher["hyperparameters"].get("backbone"),
                "student": row["preset"],
                "method": row["method"] or "teacher",
                "accuracy": row["accuracy"],
                "macro_f1": row["macro_f1"],
                "agreement_with_teacher": row.get("agreement_with_teacher"),
                "wall_s": wall,
                "epochs": row.get("epochs"),
                "best_epoch": row.get("best_epoch"),
                "params": row["params"],
                "size_mb": row["size_mb"],
                "latency_p50_ms_torch_1thread": by_backend.get("torch"),
                "latency_p50_ms_onnx_int8_1thread": int8,
                "teacher_torch_over_this_int8": round(teacher_ms / int8, 2) if teacher_ms and int8 else None,
            }
        )
        print(
            f"{records[-1]['method'] if row['role'] == 'teacher' else row['name']:28s} "
            f"acc {row['accuracy']:.4f}  F1 {row['macro_f1']:.4f}  torch {by_backend.get('torch')} ms  "
            f"int8 {int8} ms  teacher-torch / int8 {records[-1]['teacher_torch_over_this_int8']}x"
        )
    folder = RESULTS / args.name
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "report.md", "report.html"):
        shutil.copy(run_dir / name, folder / name)
    write_results(
        args.name,
        {
            "run_dir": str(run_dir),
            "note": args.note,
            "machine_of_run": results["machine"],
            "seed": results["seed"],
            "records": records,
            "report": f"{args.name}/report.html",
        },
    )


if __name__ == "__main__":
    main()
