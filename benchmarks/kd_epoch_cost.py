"""Benchmark: the cost of one KD epoch (teacher logits from the cache) against one no-KD epoch.

Both epochs train the same student on the same batches; only the loss differs. The teacher cache is
built once before timing (its cost is reported separately). Epochs alternate none/soft so machine drift
hits both; the figure is the median training time of `--repeats` epochs each.

Usage:
    python benchmarks/kd_epoch_cost.py --teacher runs/cpu-b77/teacher --data-dir ../shared/data --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_results  # noqa: E402

import textkd  # noqa: E402
from textkd.cli import quiet_transformers  # noqa: E402
from textkd.config import DataConfig, DistillConfig, StudentConfig, TrainConfig  # noqa: E402
from textkd.data.batching import ModelInputs  # noqa: E402
from textkd.data.tokenize import encode  # noqa: E402
from textkd.losses.composite import build_loss  # noqa: E402
from textkd.models import build_student, load_model  # noqa: E402
from textkd.training.cache import clear_cache, teacher_outputs  # noqa: E402
from textkd.training.distiller import Distiller  # noqa: E402
from textkd.utils import read_jsonl, set_seed  # noqa: E402


def one_epoch(method, teacher, teacher_tokenizer, splits, cached, args, workdir) -> float:
    set_seed(0)
    student, tokenizer = build_student(
        StudentConfig(preset=args.student), teacher, teacher_tokenizer, splits.label_names, splits.train.texts
    )
    train = ModelInputs({"": encode(splits.train.texts, tokenizer, args.max_len)}, splits.train.labels)
    val = ModelInputs(
        {"": encode(splits.validation.texts[:64], tokenizer, args.max_len)}, splits.validation.labels[:64]
    )
    cfg = TrainConfig(epochs=1, batch_size=32, lr=3e-4, progress=False, device="cpu", patience=0)
    out = Path(workdir) / f"{method}-{time.perf_counter_ns()}"
    Distiller(
        student,
        tokenizer,
        cfg,
        out,
        teacher=teacher if method != "none" else None,
        loss=build_loss(method, DistillConfig()),
        teacher_outputs=cached if method != "none" else None,
        label_names=splits.label_names,
    ).fit(train, val)
    return read_jsonl(out / "metrics.jsonl")[0]["train_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", default="banking77")
    ap.add_argument("--data-dir")
    ap.add_argument("--student", default="tinybert-4l-312")
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--name", default="kd_epoch_cost_cpu")
    args = ap.parse_args()
    quiet_transformers()
    splits = textkd.load_data(DataConfig(name=args.data, data_dir=args.data_dir, max_len=args.max_len))
    teacher, teacher_tokenizer = load_model(args.teacher)
    inputs = ModelInputs({"": encode(splits.train.texts, teacher_tokenizer, args.max_len)}, splits.train.labels)
    clear_cache(args.teacher)
    started = time.perf_counter()
    cached = teacher_outputs(teacher, inputs, teacher_dir=args.teacher, device="cpu")
    cache_s = time.perf_counter() - started
    times: dict[str, list[float]] = {"none": [], "soft": []}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.repeats):
            for method in ("none", "soft"):
                times[method].append(one_epoch(method, teacher, teacher_tokenizer, splits, cached, args, workdir))
                print(f"{method}: {times[method][-1]:.1f} s", flush=True)
    none_s, soft_s = statistics.median(times["none"]), statistics.median(times["soft"])
    ratio = soft_s / none_s
    print(
        f"median epoch: none {none_s:.1f} s, soft (cached teacher) {soft_s:.1f} s, ratio {ratio:.3f} "
        f"(target <= 1.15); cache built once in {cache_s:.1f} s"
    )
    write_results(
        args.name,
        {
            "dataset": splits.name,
            "teacher": args.teacher,
            "student": args.student,
            "method": "soft vs none",
            "epoch_s": times,
            "median_none_s": none_s,
            "median_soft_s": soft_s,
            "ratio": ratio,
            "cache_build_s": cache_s,
            "train_rows": len(splits.train),
            "machine_label": machine()["label"],
        },
    )


if __name__ == "__main__":
    main()
