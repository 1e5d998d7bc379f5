"""Data-parallel distillation in 2 CPU processes (gloo) matches one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from textkd.models.io import load_model, save_model

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def _run(args: list[object], cwd: Path, processes: int = 1) -> str:
    """The worker with `args` in one process, or in `processes` gloo processes under torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent)}
    env.pop("WORLD_SIZE", None)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [sys.executable, *(launcher if processes > 1 else []), str(WORKER), *map(str, args)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _assert_same_students(one_dir: Path, two_dir: Path) -> None:
    one, _ = load_model(one_dir / "bilstm-soft")
    two, _ = load_model(two_dir / "bilstm-soft")
    for (name, a), b in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tiny_teacher, tiny_tokenizer, tmp_path):
    teacher_dir = tmp_path / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, teacher_dir, extra={"kind": "teacher"})
    # One process at batch 8 and two processes at batch 4 each see the same 8-row global batches.
    single = _run([teacher_dir, tmp_path / "one", 8], tmp_path)
    double = _run([teacher_dir, tmp_path / "two", 4], tmp_path, processes=2)
    assert "rank 0: steps 9" in single  # 24 rows / 8 per step x 3 epochs
    assert "rank 0: steps 9" in double and "rank 1: steps 9" in double
    _assert_same_students(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_two_processes_distil_on_a_transfer_set_like_one(tiny_teacher, tiny_tokenizer, tiny_texts, tmp_path):
    teacher_dir = tmp_path / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, teacher_dir, extra={"kind": "teacher"})
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(text[::-1] for text in tiny_texts[:16]) + "\n", encoding="utf-8")
    single = _run([teacher_dir, tmp_path / "one", 8, unlabeled], tmp_path)
    double = _run([teacher_dir, tmp_path / "two", 4, unlabeled], tmp_path, processes=2)
    # 24 training rows + 24 augmented + 16 unlabeled = 64 rows: 8 steps of 8 per epoch, 3 epochs
    assert "rank 0: steps 24" in single
    assert "rank 0: steps 24" in double and "rank 1: steps 24" in double
    _assert_same_students(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_two_processes_label_a_corpus_like_one(tiny_teacher, tiny_tokenizer, tiny_texts, tmp_path):
    import numpy as np

    teacher_dir = tmp_path / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, teacher_dir, extra={"kind": "teacher"})
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(tiny_texts) + "\n", encoding="utf-8")  # 40 texts: 8 chunks of 5
    _run(["label", teacher_dir, texts, tmp_path / "one"], tmp_path)
    double = _run(["label", teacher_dir, texts, tmp_path / "two"], tmp_path, processes=2)
    assert double.count("labelled 40 rows") == 2
    one = np.load(tmp_path / "one" / "logits.npy")
    two = np.load(tmp_path / "two" / "logits.npy")
    assert one.shape == (40, 4) and np.abs(one).sum() > 0
    np.testing.assert_allclose(two, one, atol=1e-5)
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["processes"] == 2 and meta["rows"] == 40  # each process labelled every other chunk
