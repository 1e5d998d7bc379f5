"""Benchmark: several trained teachers alone and as an ensemble (mean of their probabilities), on validation and test.

Answers "would distilling these teachers together beat each of them?" before paying for the distillation:
`distill.teachers` averages the same probabilities (at the KD temperature) into the soft targets.

Usage:
    python benchmarks/teacher_ensemble.py runs/s5/seed1/teacher runs/s5/seed2/teacher runs/s5/seed3/teacher \
        --data-dir ../shared/data --name cpu_banking77_teacher_ensemble
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402

import textkd  # noqa: E402
from textkd.api import _model_data_config  # noqa: E402
from textkd.cli import quiet_transformers  # noqa: E402
from textkd.data.batching import STUDENT, ModelInputs  # noqa: E402
from textkd.data.tokenize import encode  # noqa: E402
from textkd.evaluation.metrics import classification_metrics  # noqa: E402
from textkd.models.io import load_model  # noqa: E402
from textkd.training.inference import forward_outputs, softmax  # noqa: E402

SPLITS = ("validation", "test")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def member_probs(folder: Path, splits, max_len: int) -> dict[str, np.ndarray]:
    """The teacher's class probabilities for every row of each split, in the splits' label order."""
    model, tokenizer = load_model(folder)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if names != list(splits.label_names):
        raise SystemExit(f"{folder}: labels differ from the dataset's; ensembles need one label set")
    out = {}
    for split in SPLITS:
        dataset = splits.split(split)
        inputs = ModelInputs({STUDENT: encode(dataset.texts, tokenizer, max_len)}, dataset.labels)
        out[split] = softmax(forward_outputs(model, inputs, 256, device=DEVICE)["logits"])
    return out


def scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    m = classification_metrics(labels, probs.argmax(-1), probs=probs)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("teachers", nargs="+", help="trained teacher folders (same dataset and labels)")
    ap.add_argument("--data-dir")
    ap.add_argument("--name", required=True, help="results file name (benchmarks/results/<name>.json)")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()
    quiet_transformers()
    started = time.perf_counter()
    data = _model_data_config(args.teachers[0])
    if args.data_dir:
        data.data_dir = args.data_dir
    splits = textkd.load_data(data)
    labels = {split: splits.split(split).labels for split in SPLITS}
    probs = {folder: member_probs(Path(folder), splits, data.max_len) for folder in args.teachers}
    rows = []
    for folder, p in probs.items():
        rows.append({"teacher": folder, **{split: scores(labels[split], p[split]) for split in SPLITS}})
    mean = {split: np.mean([p[split] for p in probs.values()], axis=0) for split in SPLITS}
    rows.append(
        {"teacher": f"ensemble of {len(probs)}", **{split: scores(labels[split], mean[split]) for split in SPLITS}}
    )
    for row in rows:
        print(
            f"{row['teacher']:40s} val acc {row['validation']['accuracy']:.4f} macro-F1 "
            f"{row['validation']['macro_f1']:.4f} | test acc {row['test']['accuracy']:.4f} macro-F1 "
            f"{row['test']['macro_f1']:.4f}"
        )
    ensemble = rows[-1]["test"]
    write_results(
        args.name,
        {
            "dataset": splits.name,
            "notes": splits.notes,
            "teacher": "minilm-l6",
            "student": None,
            "method": "teacher-ensemble",
            "accuracy": ensemble["accuracy"],
            "macro_f1": ensemble["macro_f1"],
            "members": rows,
            "wall_s": round(time.perf_counter() - started, 1),
        },
        args.results_dir,
    )


if __name__ == "__main__":
    main()
