"""Teacher refit: the epoch count is chosen on validation, then a second run trains on train + validation."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

import textkd
from textkd.config import Config, DataConfig, TeacherConfig, TrainConfig
from textkd.errors import ConfigError, DataError
from textkd.utils import read_jsonl


def _config(tiny_bert_dir, **train) -> Config:
    base = {"epochs": 3, "batch_size": 8, "lr": 2e-3, "patience": 0, "progress": False, "device": "cpu", "seed": 5}
    base.update(train)
    return Config(
        data=DataConfig(max_len=32),
        teacher=TeacherConfig(backbone=str(tiny_bert_dir), refit=True, train=TrainConfig(**base)),
    )


def test_refit_trains_on_train_and_validation_for_the_selected_epochs(tiny_bert_dir, tiny_splits, tmp_path):
    result = textkd.train_teacher(_config(tiny_bert_dir), tmp_path / "t", splits=tiny_splits)
    selection_rows = read_jsonl(tmp_path / "t" / "selection" / "metrics.jsonl")
    chosen = [r["epoch"] for r in selection_rows if r["best"]][-1]
    refit_rows = read_jsonl(tmp_path / "t" / "metrics.jsonl")
    assert [r["epoch"] for r in refit_rows] == list(range(1, chosen + 1))
    assert not any(k.startswith("val_") for row in refit_rows for k in row)  # nothing left to select on
    rows = len(tiny_splits.train) + len(tiny_splits.validation)
    assert refit_rows[0]["step"] == -(-rows // 8)  # one epoch covers train + validation at batch size 8
    marker = json.loads((tmp_path / "t" / "textkd_model.json").read_text())
    assert marker["refit"]["epochs"] == chosen and marker["refit"]["rows"] == rows
    assert (tmp_path / "t" / "selection" / "eval_test.json").is_file()  # the selected model's test figure too
    assert result.fit.best_epoch == chosen
    assert result.test_metrics["rows"] == len(tiny_splits.test)
    assert not (tmp_path / "t" / "checkpoint").exists() and not (tmp_path / "t" / "selection" / "checkpoint").exists()


def test_refit_resume_reuses_a_finished_selection_run(tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir, epochs=2)
    textkd.train_teacher(cfg, tmp_path / "a", splits=tiny_splits)
    selection = tmp_path / "a" / "selection" / "model.safetensors"
    stamp = selection.stat().st_mtime_ns
    (tmp_path / "a" / "model.safetensors").unlink()  # as if the refit had crashed before saving
    textkd.train_teacher(cfg, tmp_path / "a", splits=tiny_splits, resume=True)
    assert selection.stat().st_mtime_ns == stamp  # the selection run was not trained again
    textkd.train_teacher(cfg, tmp_path / "b", splits=tiny_splits)
    resumed, fresh = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    for key, value in fresh.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_refit_resume_needs_a_selected_epoch(tiny_bert_dir, tiny_splits, tmp_path):
    folder = tmp_path / "t" / "selection"
    folder.mkdir(parents=True)
    for name in ("textkd_model.json", "eval_test.json"):  # saved and evaluated: a finished selection run
        (folder / name).write_text("{}")
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "best": False}) + "\n")
    with pytest.raises(DataError, match="logged no selected epoch"):
        textkd.train_teacher(_config(tiny_bert_dir), tmp_path / "t", splits=tiny_splits, resume=True)


def test_teacher_label_smoothing_changes_training_and_is_checked(tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir, epochs=1)
    cfg.teacher.refit = False
    plain = textkd.train_teacher(cfg, tmp_path / "plain", splits=tiny_splits)
    cfg.teacher.label_smoothing = 0.2
    smoothed = textkd.train_teacher(cfg, tmp_path / "smoothed", splits=tiny_splits)
    assert smoothed.fit.history[0]["train_ce"] != plain.fit.history[0]["train_ce"]
    cfg.teacher.label_smoothing = 1.0
    with pytest.raises(ConfigError, match=r"teacher.label_smoothing must be in \[0, 1\)"):
        textkd.train_teacher(cfg, tmp_path / "bad", splits=tiny_splits)


def test_students_initialised_from_a_refit_teachers_layers_get_a_warning(tiny_bert_dir, tiny_splits, tmp_path):
    from textkd.config import StudentConfig
    from textkd.data.loading import DataWarning

    cfg = _config(tiny_bert_dir, epochs=1)
    textkd.train_teacher(cfg, tmp_path / "t", splits=tiny_splits)
    cfg.student = StudentConfig(preset="bert-tiny-2l-128", init="teacher-layers", train=cfg.teacher.train)
    with pytest.warns(DataWarning, match=r"refit on train \+ validation"):
        textkd.distill(cfg, tmp_path / "t", tmp_path / "s", methods=["none"], splits=tiny_splits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the selection run held validation out: no warning
        textkd.distill(cfg, tmp_path / "t" / "selection", tmp_path / "s2", methods=["none"], splits=tiny_splits)
