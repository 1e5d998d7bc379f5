"""Benchmark: peak memory of labelling and distilling on 100,000 and 1,000,000 synthetic texts (CPU).

A tiny random teacher (BERT, 2 layers, hidden 64) labels a synthetic corpus with `textkd.label` (streamed
to memory-mapped files), then a tiny student (BiLSTM, 1 x 32) is distilled on a transfer set of 2,000
labelled rows plus the whole corpus (`distill.unlabeled`: labelled, tokenised and joined on disk) for at most
400 steps of 256 texts. Each stage runs in a fresh process that reports its own peak resident memory
(ru_maxrss), so the figures do not mix. The claim under test: peak memory does not grow in proportion to
the corpus (10x the texts must cost far less than 10x the memory).

Usage:
    python benchmarks/memory_scale.py --rows 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402

WORDS = [f"w{i}" for i in range(400)]
LABELS = ["alpha", "beta", "delta", "gamma"]  # sorted: the order textkd gives a CSV's labels


def synthetic_text(rng, label: int | None = None) -> str:
    words = list(rng.choice(WORDS, size=int(rng.integers(5, 20))))
    if label is not None:  # a keyword per class, so the labelled rows are learnable
        words.insert(int(rng.integers(len(words))), f"w{label}")
    return " ".join(words)


def make_inputs(folder: Path, rows: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.csv", "w", encoding="utf-8") as handle:
        handle.write("text,label\n")
        for i in range(2000):
            handle.write(f"{synthetic_text(rng, i % 4)},{LABELS[i % 4]}\n")
    with open(folder / "test.csv", "w", encoding="utf-8") as handle:
        handle.write("text,label\n")
        for i in range(400):
            handle.write(f"{synthetic_text(rng, i % 4)},{LABELS[i % 4]}\n")
    corpus = folder / f"corpus_{rows}.txt"
    if not corpus.is_file():
        with open(corpus, "w", encoding="utf-8") as handle:
            for _ in range(rows // 10000):
                handle.write("\n".join(synthetic_text(rng) for _ in range(10000)) + "\n")


def make_teacher(folder: Path) -> None:
    import torch

    from textkd.data.tokenizers import build_wordpiece_tokenizer
    from textkd.models.backbones import scratch_bert_config
    from textkd.models.classifier import TextkdClassifier
    from textkd.models.io import save_model

    if (folder / "model.safetensors").is_file():
        return
    torch.manual_seed(0)
    tokenizer = build_wordpiece_tokenizer([" ".join(WORDS)] * 2, vocab_size=600)
    model = TextkdClassifier.from_scratch(scratch_bert_config(tokenizer, 2, 64, 2, 128), 4, LABELS)
    save_model(model, tokenizer, folder, extra={"kind": "teacher", "data": {"max_len": 32}})


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def stage(name: str, work: Path, rows: int) -> dict:
    """Run in a child process: one stage, its own peak memory."""
    import textkd
    from textkd.cli import quiet_transformers
    from textkd.config import Config, DataConfig, DistillConfig, StudentConfig, TrainConfig

    quiet_transformers()
    corpus = work / f"corpus_{rows}.txt"
    baseline = peak_mb()
    started = time.perf_counter()
    if name == "label":
        out = textkd.label(work / "teacher", corpus, work / f"labels_{rows}", batch_size=512, device="cpu")
        extra = {"rows": out["rows"]}
    else:
        # At most 400 steps (one epoch of the 100,000-text transfer set): the arrays that could grow with the
        # corpus are all built before the first step, and the memory of a step does not depend on the corpus.
        train = TrainConfig(epochs=1, batch_size=256, lr=1e-3, patience=0, progress=False, device="cpu", max_steps=400)
        cfg = Config(
            data=DataConfig(name="files", train=str(work / "train.csv"), test=str(work / "test.csv"), max_len=32),
            student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=32, train=train),
            distill=DistillConfig(unlabeled=[str(corpus)]),
        )
        [result] = textkd.distill(cfg, work / "teacher", work / f"students_{rows}", methods=["soft"])
        info = json.loads((result.output_dir / "textkd_model.json").read_text())
        extra = {
            "transfer_rows": info["transfer_set"]["labelled_rows"] + info["transfer_set"]["teacher_labelled_rows"],
            "steps": result.fit.history[-1]["step"],
            "accuracy": result.test_metrics["accuracy"],
            "macro_f1": result.test_metrics["macro_f1"],
        }
    return {
        "stage": name,
        "corpus_rows": rows,
        "peak_rss_mb": round(peak_mb(), 1),
        "rss_after_imports_mb": round(baseline, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--work", default="runs/memory_scale")
    ap.add_argument("--name", default="memory_scale_cpu")
    ap.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage in this process
    args = ap.parse_args()
    work = Path(args.work)
    if args.stage:
        print(json.dumps(stage(args.stage, work, args.rows[0])), flush=True)
        return
    records = []
    for rows in args.rows:
        make_inputs(work, rows)
        make_teacher(work / "teacher")
        # Nothing reused from an earlier run: every stage labels, tokenises and joins from scratch.
        for stale in (work / "teacher" / ".textkd-cache", work / f"labels_{rows}", work / f"students_{rows}"):
            shutil.rmtree(stale, ignore_errors=True)
        for name in ("label", "distill"):
            done = subprocess.run(
                [sys.executable, __file__, "--work", str(work), "--rows", str(rows), "--stage", name],
                capture_output=True,
                text=True,
                check=True,
            )
            record = json.loads(done.stdout.strip().splitlines()[-1])
            records.append(record)
            print(
                f"{name:8s} {rows:>9,} texts: peak RSS {record['peak_rss_mb']:8.1f} MB "
                f"(after imports {record['rss_after_imports_mb']:.1f} MB), {record['wall_s']:.1f} s",
                flush=True,
            )
    by = {(r["stage"], r["corpus_rows"]): r["peak_rss_mb"] for r in records}
    growth = {}
    if len(args.rows) > 1:
        small, large = min(args.rows), max(args.rows)
        for name in ("label", "distill"):
            growth[name] = round(by[(name, large)] / by[(name, small)], 3)
            print(f"{name}: {large // small}x the texts -> {growth[name]:.2f}x the peak memory")
    write_results(
        args.name,
        {
            "dataset": "synthetic (400-word vocabulary, 5-20 words per text)",
            "teacher": "random BERT 2L/64H",
            "student": "bilstm 1x32",
            "method": "soft",
            "records": records,
            "peak_growth": growth,
        },
    )


if __name__ == "__main__":
    main()
