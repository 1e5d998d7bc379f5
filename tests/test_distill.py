"""Distillation on tiny offline models: the teacher stays frozen, cache == online, every method trains."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import textkd
from textkd.config import Config, DataConfig, StudentConfig, TeacherConfig, TrainConfig
from textkd.data.batching import ModelInputs
from textkd.data.tokenize import encode
from textkd.errors import ConfigError
from textkd.losses.composite import build_loss
from textkd.models.io import load_model, save_model
from textkd.training.cache import CACHE_DIRNAME, teacher_outputs
from textkd.training.distiller import Distiller


def _train_cfg(**kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "patience": 0, "progress": False, "device": "cpu", "seed": 3}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


def _config(tiny_bert_dir, **student) -> Config:
    tiny_student = {"preset": "bert-tiny-2l-128", "num_layers": 2, "hidden_size": 32}
    tiny_student.update(student)
    return Config(
        data=DataConfig(max_len=32),
        teacher=TeacherConfig(backbone=str(tiny_bert_dir), train=_train_cfg()),
        student=StudentConfig(train=_train_cfg(), **tiny_student),
    )


def test_teacher_parameters_never_change(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    teacher, _ = load_model(teacher_dir)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = _config(tiny_bert_dir)
    student, tokenizer = textkd.models.build_student(
        cfg.student, teacher, load_model(teacher_dir)[1], tiny_splits.label_names, tiny_splits.train.texts
    )
    inputs = ModelInputs({"": encode(tiny_splits.train.texts, tokenizer, 32)}, tiny_splits.train.labels)
    val = ModelInputs({"": encode(tiny_splits.validation.texts, tokenizer, 32)}, tiny_splits.validation.labels)
    loss = build_loss("soft+hidden", cfg.distill)  # online teacher: hidden states and attention maps
    distiller = Distiller(
        student,
        tokenizer,
        cfg.student.train,
        tmp_path,
        teacher=teacher,
        loss=loss,
        student_pooled_dim=student.pooled_size,
        teacher_pooled_dim=teacher.pooled_size,
    )
    distiller.fit(inputs, val)
    assert not any(p.requires_grad for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"train_kd", "train_ce", "train_hidden", "train_layer", "train_attention"} <= set(rows[0])


def test_cached_and_online_teacher_outputs_agree(teacher_dir, tiny_splits):
    teacher, tokenizer = load_model(teacher_dir)
    inputs = ModelInputs({"": encode(tiny_splits.train.texts, tokenizer, 32)}, tiny_splits.train.labels)
    first = teacher_outputs(teacher, inputs, teacher_dir=teacher_dir, need_pooled=True, batch_size=5)
    again = teacher_outputs(teacher, inputs, teacher_dir=teacher_dir, need_pooled=True, batch_size=7)
    assert not first.cached and again.cached
    assert (teacher_dir / CACHE_DIRNAME).is_dir()
    batch = inputs.batch(np.arange(len(inputs)))
    with torch.no_grad():
        online = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    np.testing.assert_allclose(np.asarray(again.logits), online.logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(again.pooled), online.pooled.numpy(), atol=1e-5)


def test_methods_share_initial_weights_and_order(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir)
    results = textkd.distill(cfg, teacher_dir, tmp_path, methods=["none", "hard", "soft"], splits=tiny_splits)
    assert [r.method for r in results] == ["none", "hard", "soft"]
    summary = json.loads((tmp_path / "comparison_bert-tiny-2l-128.json").read_text())
    assert [r["method"] for r in summary["results"]] == ["none", "hard", "soft"]
    assert summary["shared"]["seed"] == 3 and "identical" in summary["shared"]["data_order"]
    for r in results:
        assert 0.0 <= r.test_metrics["accuracy"] <= 1.0
        assert "agreement_with_teacher" in r.test_metrics
        assert not (r.output_dir / "checkpoint").exists()  # finished runs drop their checkpoint


def test_resume_reuses_finished_students_and_refuses_a_changed_config(
    teacher_dir, tiny_bert_dir, tiny_splits, tmp_path, monkeypatch
):
    cfg = _config(tiny_bert_dir)
    first = textkd.distill(cfg, teacher_dir, tmp_path, methods=["none", "soft"], splits=tiny_splits)
    monkeypatch.setattr(Distiller, "fit", lambda *args, **kwargs: pytest.fail("a finished student was trained again"))
    again = textkd.distill(cfg, teacher_dir, tmp_path, methods=["none", "soft"], resume=True, splits=tiny_splits)
    assert [r.test_metrics for r in again] == [r.test_metrics for r in first]
    assert [(r.fit.best_epoch, r.params) for r in again] == [(r.fit.best_epoch, r.params) for r in first]
    logged = copy.deepcopy(cfg)  # where the run is logged to is not part of what was trained
    logged.student.train.report_to, logged.student.train.log_every = ["tensorboard"], 7
    textkd.distill(logged, teacher_dir, tmp_path, methods=["none", "soft"], resume=True, splits=tiny_splits)
    changed = copy.deepcopy(cfg)
    changed.student.train.lr = 0.5
    with pytest.raises(ConfigError, match=r"different config \(student.train.lr: 0.001 -> 0.5"):
        textkd.distill(changed, teacher_dir, tmp_path, methods=["none"], resume=True, splits=tiny_splits)


def test_bilstm_student_with_own_tokenizer_reads_teacher_stream(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir, preset="bilstm", tokenizer="wordpiece", num_layers=None, hidden_size=None)
    cfg.student.train.epochs = 1
    (result,) = textkd.distill(cfg, teacher_dir, tmp_path, methods="soft+hidden", splits=tiny_splits)  # one name
    model, _ = load_model(result.output_dir)
    assert type(model).__name__ == "BiLSTMClassifier"


def test_unknown_method_and_label_mismatch(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir)
    with pytest.raises(textkd.ConfigError, match="unknown method 'sfot'"):
        textkd.distill(cfg, teacher_dir, tmp_path, methods=["sfot"], splits=tiny_splits)
    with pytest.raises(textkd.ConfigError, match="unknown method 'sfot'"):  # one name, not its letters
        textkd.distill(cfg, teacher_dir, tmp_path, methods="sfot", splits=tiny_splits)
    other = copy.deepcopy(tiny_splits)
    other.train.label_names = ["a", "b", "c", "d"]
    with pytest.raises(textkd.DataError, match="labels differ"):
        textkd.distill(cfg, teacher_dir, tmp_path, methods=["soft"], splits=other)


def test_the_distiller_weights_its_gold_term_with_the_class_weights(teacher_dir, tiny_splits, tiny_tokenizer, tmp_path):
    teacher, _ = load_model(teacher_dir)
    student = copy.deepcopy(teacher).eval()
    loss = build_loss("soft", textkd.DistillConfig())
    distiller = Distiller(student, tiny_tokenizer, _train_cfg(), tmp_path, teacher=teacher, loss=loss)
    inputs = ModelInputs({"": encode(tiny_splits.train.texts, tiny_tokenizer, 32)}, tiny_splits.train.labels)
    batch = inputs.batch(np.arange(8))
    plain = distiller.compute_loss(student, batch)
    distiller.class_weights = torch.tensor([4.0, 0.0, 0.0, 0.0])  # what fit sets for train.class_weights
    weighted = distiller.compute_loss(student, batch)
    labels = batch["labels"]
    assert (labels == 0).any() and (labels != 0).any()  # some rows weigh 4, others 0
    with torch.no_grad():
        logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=distiller.class_weights, reduction="sum") / 8
    torch.testing.assert_close(weighted.parts["ce"], expected)
    torch.testing.assert_close(weighted.parts["kd"], plain.parts["kd"])
