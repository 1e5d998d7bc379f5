"""The Optuna sweep on tiny models: trial 0 is the given config, validation only, pruning, outputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from textkd.cli import app
from textkd.config import Config, DataConfig, StudentConfig, TrainConfig
from textkd.errors import ConfigError
from textkd.models.io import save_model

pytest.importorskip("optuna")

from textkd.sweep import SearchSpace, apply_params, sweep  # noqa: E402


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


@pytest.fixture()
def tiny_files(tmp_path, tiny_splits):
    rows = {"train": tiny_splits.train, "validation": tiny_splits.validation, "test": tiny_splits.test}
    paths = {}
    for name, split in rows.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"text": t, "label": split.label_names[y]}) + "\n"
                for t, y in zip(split.texts, split.labels, strict=True)
            ),
            encoding="utf-8",
        )
        paths[name] = str(path)
    labels = tmp_path / "labels.txt"  # the teacher's label order
    labels.write_text("\n".join(tiny_splits.train.label_names), encoding="utf-8")
    paths["label_file"] = str(labels)
    return paths


def _cfg(files) -> Config:
    train = TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=1)
    return Config(
        data=DataConfig(name="files", max_len=32, **files),
        student=StudentConfig(preset="bilstm", num_layers=1, hidden_size=16, train=train),
    )


def test_apply_params_sets_the_four_settings(tiny_files):
    cfg = apply_params(_cfg(tiny_files), {"temperature": 2.5, "alpha": 0.4, "lr": 3e-3, "epochs": 7})
    assert (cfg.distill.temperature, cfg.distill.alpha, cfg.student.train.lr, cfg.student.train.epochs) == (
        2.5,
        0.4,
        3e-3,
        7,
    )


def test_sweep_runs_trials_keeps_the_best_and_writes_a_recipe(teacher_dir, tiny_files, tmp_path, monkeypatch):
    from textkd import api

    read_test = []
    original = api.evaluate

    def watch(model_dir, *args, **kwargs):
        read_test.append(kwargs.get("split"))
        return original(model_dir, *args, **kwargs)

    monkeypatch.setattr(api, "evaluate", watch)
    cfg = _cfg(tiny_files)
    result = sweep(cfg, teacher_dir, trials=5, output_dir=tmp_path / "sweep", seed=0, space=SearchSpace(epochs=(1, 3)))
    assert read_test == ["test"]  # the test split is read once, after the search
    trials = [json.loads(line) for line in (tmp_path / "sweep" / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 5
    assert trials[0]["temperature"] == 4.0 and trials[0]["alpha"] == 0.7 and trials[0]["epochs"] == 2
    assert result.default_value == trials[0]["val_macro_f1"]
    assert result.best_value >= result.default_value
    assert all(1 <= t["epochs"] <= 3 and 1.0 <= t["temperature"] <= 10.0 for t in trials)
    best = yaml.safe_load((tmp_path / "sweep" / "best.yaml").read_text())
    assert best["distill"]["temperature"] == pytest.approx(result.best_params["temperature"])
    assert best["student"]["train"]["epochs"] == result.best_params["epochs"]
    kept = list((tmp_path / "sweep" / "trials").iterdir())
    assert len(kept) == 1  # only the best trial's model
    summary = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
    assert kept[0].name == Path(summary["best_model"]).name == f"trial-{summary['best_trial']:03d}"
    assert (tmp_path / "sweep" / "trials.png").read_bytes()[:4] == b"\x89PNG"
    assert "![trials](trials.png)" in (tmp_path / "sweep" / "report.md").read_text()


def test_sweep_errors(teacher_dir, tiny_files, tmp_path):
    with pytest.raises(ConfigError, match="a sweep of T and alpha needs a KD method"):
        sweep(_cfg(tiny_files), teacher_dir, method="none", output_dir=tmp_path)
    mse = _cfg(tiny_files)
    mse = replace(mse, distill=replace(mse.distill, kd_loss="mse"))
    with pytest.raises(ConfigError, match="which distill.kd_loss=mse does not have"):
        sweep(mse, teacher_dir, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="trials must be >= 1, got 0"):
        sweep(_cfg(tiny_files), teacher_dir, trials=0, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="timeout must be > 0 seconds, got -5"):  # not "every trial was pruned"
        sweep(_cfg(tiny_files), teacher_dir, timeout_s=-5, output_dir=tmp_path)


def test_sweep_command(teacher_dir, tiny_files, tmp_path):
    args = [
        "sweep",
        "--teacher",
        str(teacher_dir),
        "--trials",
        "2",
        "-o",
        str(tmp_path / "s"),
        "--data",
        "files",
        "--data.train",
        tiny_files["train"],
        "--data.validation",
        tiny_files["validation"],
        "--data.test",
        tiny_files["test"],
        "--data.label-file",
        tiny_files["label_file"],
        "--data.max-len",
        "32",
        "--student",
        "bilstm",
        "--student.num-layers",
        "1",
        "--student.hidden-size",
        "16",
        "--train.epochs",
        "1",
        "--train.batch-size",
        "8",
        "--train.device",
        "cpu",
        "--train.progress",
        "false",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best of 2 trials" in result.output and "best.yaml" in result.output
