"""Worker for tests/test_distributed.py: one soft-KD distillation, run by 1 or N processes.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py TEACHER_DIR OUT BATCH_SIZE [UNLABELED]
    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py label TEACHER_DIR TEXTS OUT

Builds the same tiny English splits as conftest, distils a 1-layer BiLSTM with dropout switched off (so the
only difference between 1 and N processes is how the batches are spread), and saves the final student. With
UNLABELED (a text file), the transfer set adds 1 augmented copy per training text and those texts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import textkd  # noqa: E402
from textkd import api  # noqa: E402
from textkd.config import Config, DataConfig, StudentConfig, TrainConfig  # noqa: E402


def _no_dropout(build):
    def wrapped(*args, **kwargs):
        model, tokenizer = build(*args, **kwargs)
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            if isinstance(module, nn.LSTM):
                module.dropout = 0.0
        return model, tokenizer

    return wrapped


def label() -> None:
    """`ddp_worker.py label TEACHER_DIR TEXTS OUT`: label a corpus (each process takes every N-th chunk)."""
    teacher_dir, texts, out = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    result = textkd.label(teacher_dir, texts, out, max_len=32, batch_size=4, chunk_size=5, device="cpu")
    print(f"labelled {result['rows']} rows")


def main() -> None:
    if sys.argv[1] == "label":
        label()
        return
    teacher_dir, out, batch_size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    from conftest import tiny_splits_for_workers

    splits = tiny_splits_for_workers()
    train = TrainConfig(
        epochs=3, batch_size=batch_size, lr=5e-3, patience=0, progress=False, device="cpu", seed=7, warmup_ratio=0.0
    )
    cfg = Config(
        data=DataConfig(max_len=32), student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=16, train=train)
    )
    if len(sys.argv) > 4:  # a transfer set: written and labelled by the first process, read by the others
        cfg.distill.augment, cfg.distill.unlabeled = 1, [sys.argv[4]]
    api.build_student = _no_dropout(api.build_student)
    torch.manual_seed(0)
    [result] = textkd.distill(cfg, teacher_dir, out, methods=["soft"], splits=splits)
    print(
        f"rank {torch.distributed.get_rank() if torch.distributed.is_initialized() else 0}: "
        f"steps {result.fit.history[-1]['step']}, val macro-F1 {result.fit.best_metrics['val_macro_f1']:.4f}"
    )


if __name__ == "__main__":
    main()
