"""Crash safety: a SIGKILLed training run resumes to the same result; half-written or pickled models are refused."""

from __future__ import annotations

import copy
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textkd.config import TrainConfig
from textkd.data.batching import ModelInputs
from textkd.data.tokenize import encode
from textkd.errors import ModelLoadError
from textkd.models import io as model_io
from textkd.models.io import MARKER, SAVING, load_model, save_model
from textkd.training import trainer as trainer_module
from textkd.training.trainer import Trainer
from textkd.utils import read_jsonl

EPOCHS = 4
TRAIN_SCRIPT = f'''
"""Fine-tune TEACHER on DATA/{{train,validation,test}}.csv into OUT; argv: TEACHER DATA OUT [resume]."""
import sys
from pathlib import Path

import torch

from textkd.config import DataConfig, TrainConfig
from textkd.data.batching import ModelInputs
from textkd.data.loading import load_splits
from textkd.data.tokenize import encode
from textkd.models.io import load_model
from textkd.training.trainer import Trainer

torch.set_num_threads(1)  # the same arithmetic in every run, and steady speed on a busy machine
teacher, data, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
model, tokenizer = load_model(teacher)
files = {{split: str(data / f"{{split}}.csv") for split in ("train", "validation", "test")}}
splits = load_splits(DataConfig(name="files", **files))


def inputs(dataset):
    return ModelInputs({{"": encode(dataset.texts, tokenizer, 32)}}, dataset.labels)


config = TrainConfig(epochs={EPOCHS}, batch_size=8, lr=1e-3, warmup_ratio=0.0, patience=0, progress=False,
                     device="cpu", seed=11)
trainer = Trainer(model, tokenizer, config, out, label_names=splits.label_names)
trainer.fit(inputs(splits.train), inputs(splits.validation), resume=sys.argv[4:] == ["resume"])
'''


def _write_data(folder: Path, labels: list[str]) -> None:
    """Noisy keyword texts: enough rows that an epoch lasts long enough to be interrupted."""
    rng = random.Random(0)
    filler = "the a this that some very new old we they saw said about".split()
    for split, rows in (("train", 480), ("validation", 80), ("test", 40)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(rows):
                label = labels[i % len(labels)]
                words = [label if rng.random() < 0.2 else rng.choice(filler) for _ in range(rng.randint(8, 24))]
                writer.writerow([" ".join(words), label])


@pytest.fixture(scope="module")
def training_job(tiny_teacher, tiny_tokenizer, tiny_label_names, tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder with the data, the initial teacher and the training script; the script's command prefix."""
    root = tmp_path_factory.mktemp("crash")
    _write_data(root, tiny_label_names)
    save_model(tiny_teacher, tiny_tokenizer, root / "initial")
    (root / "train.py").write_text(TRAIN_SCRIPT, encoding="utf-8")
    return root, [sys.executable, str(root / "train.py"), str(root / "initial"), str(root)]


def _rows_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in read_jsonl(path)]


def _checkpoint_epoch(out: Path) -> int:
    try:
        return json.loads((out / "checkpoint" / "state.json").read_text(encoding="utf-8"))["epoch"]
    except (OSError, ValueError, KeyError):
        return 0  # not there yet, or mid-swap


def _kill_during_second_epoch(command: list[str], out: Path) -> int:
    """Start the run, SIGKILL it halfway through epoch 2; the number of epochs it had logged."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while _checkpoint_epoch(out) < 1:
            assert process.poll() is None, f"the run ended before it was killed: {process.stderr.read()}"
            assert time.monotonic() < deadline, "no epoch finished in 300 s"
            time.sleep(0.01)
        epoch_s = read_jsonl(out / "metrics.jsonl")[0]["wall_s"]
        time.sleep(epoch_s / 2)
        assert process.poll() is None, "the run finished before it was killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return len(read_jsonl(out / "metrics.jsonl"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(training_job):
    root, command = training_job
    subprocess.run([*command, str(root / "reference")], check=True, capture_output=True, timeout=600)

    killed = root / "killed"
    logged = _kill_during_second_epoch([*command, str(killed)], killed)
    assert 1 <= logged < EPOCHS
    assert _checkpoint_epoch(killed) >= logged - 1  # at most the epoch in flight is lost
    load_model(killed)  # the best model so far is complete and loads
    subprocess.run([*command, str(killed), "resume"], check=True, capture_output=True, timeout=600)

    assert [row["epoch"] for row in read_jsonl(killed / "metrics.jsonl")] == list(range(1, EPOCHS + 1))
    assert _rows_without_time(killed / "metrics.jsonl") == _rows_without_time(root / "reference" / "metrics.jsonl")
    for weights in ("checkpoint/model.safetensors", "model.safetensors"):  # final and best weights
        expected, resumed = load_file(root / "reference" / weights), load_file(killed / weights)
        assert expected.keys() == resumed.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=f"{weights}: {name}")


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


def _crash_on_call(monkeypatch, number: int) -> None:
    """Make the `number`-th os.replace inside textkd.models.io die like a killed process."""
    calls = []
    real = os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == number:
            raise _Killed
        real(src, dst)

    monkeypatch.setattr(model_io.os, "replace", replace)


def test_model_dir_being_written_is_refused(tiny_teacher, tiny_tokenizer, tmp_path):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "model")
    (path / SAVING).touch()
    with pytest.raises(ModelLoadError, match="being written, or a save into it was interrupted"):
        load_model(path)


def test_save_killed_midway_into_an_existing_model_leaves_it_refused_then_repairable(
    tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch
):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "model")
    changed = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        for param in changed.parameters():
            param.add_(1.0)
    with monkeypatch.context() as patch:
        _crash_on_call(patch, 2)  # one file of the new save is in, the rest and the marker are not
        with pytest.raises(_Killed):
            save_model(changed, tiny_tokenizer, path)
    assert (path / SAVING).exists() and not (path / MARKER).exists()
    with pytest.raises(ModelLoadError, match="interrupted"):
        load_model(path)
    save_model(changed, tiny_tokenizer, path)  # saving again repairs it
    assert not (path / SAVING).exists() and (path / MARKER).exists()
    loaded, _ = load_model(path)
    for name, tensor in changed.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.saving-")]  # no staging left behind


def test_first_save_killed_midway_leaves_no_model(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        _crash_on_call(patch, 1)  # the staged folder is complete but not yet renamed into place
        with pytest.raises(_Killed):
            save_model(tiny_teacher, tiny_tokenizer, tmp_path / "model")
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(tmp_path / "model")


def test_run_folder_before_its_first_model_is_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="no model.safetensors in the model directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("checkpoint", ["model.pt", "pytorch_model.bin"])
def test_pickle_checkpoint_refused_without_trust_pickle(tiny_teacher, tiny_tokenizer, tmp_path, checkpoint):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path / "model")
    torch.save(tiny_teacher.state_dict(), path / checkpoint)
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=rf"only a pickle checkpoint \({checkpoint}\).*can run arbitrary code"):
        load_model(path)
    model, _ = load_model(path, trust_pickle=True)
    for name, tensor in tiny_teacher.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)


def test_kill_between_metrics_row_and_checkpoint_logs_each_epoch_once(
    tiny_teacher, tiny_tokenizer, tiny_splits, tmp_path, monkeypatch
):
    def inputs(dataset):
        return ModelInputs({"": encode(dataset.texts, tiny_tokenizer, 32)}, dataset.labels)

    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=1)
    train, val = inputs(tiny_splits.train), inputs(tiny_splits.validation)
    calls = []

    def save_checkpoint(*args, **kwargs):  # epoch 2's row is in metrics.jsonl, its checkpoint never comes
        calls.append(args)
        if len(calls) == 2:
            raise _Killed
        real_save_checkpoint(*args, **kwargs)

    real_save_checkpoint = trainer_module.save_checkpoint
    with monkeypatch.context() as patch, pytest.raises(_Killed):
        patch.setattr(trainer_module, "save_checkpoint", save_checkpoint)
        Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, cfg, tmp_path).fit(train, val)
    Trainer(copy.deepcopy(tiny_teacher), tiny_tokenizer, cfg, tmp_path).fit(train, val, resume=True)
    assert [row["epoch"] for row in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
