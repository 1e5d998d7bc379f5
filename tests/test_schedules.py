"""Temperature and loss-weight schedules: documented values, validation, wiring into distillation."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

import textkd
from textkd.config import Config, DataConfig, DistillConfig, StudentConfig, TeacherConfig, TrainConfig
from textkd.errors import ConfigError
from textkd.losses.composite import build_loss
from textkd.losses.functional import kd_kl_div
from textkd.losses.schedules import Schedule, distill_schedules
from textkd.models.io import load_model, save_model
from textkd.training.distiller import Distiller


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_start_middle_end(kind):
    schedule = Schedule(kind, 8.0, 1.0)
    total = 101  # steps 0..100: the middle step is 50
    assert schedule.value(0, total) == 8.0
    assert schedule.value(50, total) == pytest.approx(4.5)
    assert schedule.value(100, total) == pytest.approx(1.0)
    assert schedule.value(500, total) == pytest.approx(1.0)  # past the end: stays at the end value


def test_cosine_differs_from_linear_between_the_ends():
    linear, cosine = Schedule("linear", 8.0, 1.0), Schedule("cosine", 8.0, 1.0)
    assert linear.value(25, 101) == pytest.approx(8.0 - 7.0 * 0.25)
    assert cosine.value(25, 101) == pytest.approx(1.0 + 7.0 * (1 + math.cos(math.pi * 0.25)) / 2)
    assert cosine.value(25, 101) > linear.value(25, 101)  # cosine stays near the start longer


def test_constant_ignores_end_and_increasing_schedules_work():
    assert Schedule("constant", 4.0, 1.0).value(99, 100) == 4.0
    assert Schedule("linear", 0.2, 0.9).value(9, 10) == pytest.approx(0.9)
    assert Schedule("linear", 8.0, 1.0).describe() == "linear 8 -> 1"
    assert Schedule("constant", 4.0, 4.0).describe() == "constant 4"


def test_distill_schedules_validation():
    with pytest.raises(ConfigError, match=r"distill.temperature_schedule is 'linear' but distill.temperature_end"):
        distill_schedules(DistillConfig(temperature_schedule="linear"))
    with pytest.raises(ConfigError, match="unknown distill.alpha_schedule 'step'"):
        distill_schedules(DistillConfig(alpha_schedule="step", alpha_end=0.1))
    with pytest.raises(ConfigError, match=r"distill.temperature_end must be > 0, got 0.0"):
        distill_schedules(DistillConfig(temperature_schedule="cosine", temperature_end=0.0))
    with pytest.raises(ConfigError, match=r"distill.alpha_end must be in \[0, 1\], got 1.5"):
        distill_schedules(DistillConfig(alpha_schedule="linear", alpha_end=1.5))
    with pytest.raises(ConfigError, match="unknown schedule 'exp'"):
        Schedule("exp", 1.0, 2.0)
    resolved = distill_schedules(DistillConfig(temperature=8.0, temperature_schedule="linear", temperature_end=1.0))
    assert resolved["temperature"] == Schedule("linear", 8.0, 1.0)
    assert resolved["alpha"] == Schedule("constant", 0.7, 0.7)


def _distiller(student, cfg: DistillConfig, loss, teacher=None, **extra) -> Distiller:
    """A CPU distiller of `student` with `cfg`'s schedules and `loss`, for checking its per-step values."""
    train = TrainConfig(device="cpu", progress=False)
    return Distiller(
        student, None, train, "unused", teacher=teacher, loss=loss, schedules=distill_schedules(cfg), **extra
    )


def test_distiller_sets_scheduled_values_on_the_loss(tiny_teacher):
    cfg = DistillConfig(
        temperature=8.0,
        temperature_schedule="linear",
        temperature_end=1.0,
        alpha=0.9,
        alpha_schedule="linear",
        alpha_end=0.5,
    )
    loss = build_loss("soft", cfg)
    distiller = _distiller(tiny_teacher, cfg, loss)
    distiller.on_step(0, 11)
    assert loss.terms["kd"].params["temperature"] == 8.0 and loss.weights["kd"] == pytest.approx(0.9)
    distiller.on_step(10, 11)
    assert loss.terms["kd"].params["temperature"] == 1.0
    assert loss.weights == pytest.approx({"kd": 0.5, "ce": 0.5})
    # T^2 follows the current T: the composed loss equals 0.5 * kd_kl_div(T=1) + 0.5 * CE.
    student, teacher, labels = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    out = loss(student_logits=student, teacher_logits=teacher, labels=labels)
    expected = 0.5 * kd_kl_div(student, teacher, 1.0) + 0.5 * torch.nn.functional.cross_entropy(student, labels)
    torch.testing.assert_close(out.total, expected)
    assert distiller.epoch_log() == {"temperature": 1.0, "alpha": 0.5}  # no hidden term in "soft"


def test_hidden_weight_schedule_only_applies_to_soft_hidden(tiny_teacher):
    tiny_teacher = copy.deepcopy(tiny_teacher)  # the distiller freezes its teacher; the fixture is shared
    cfg = DistillConfig(hidden_weight_schedule="linear", hidden_weight=0.0, hidden_weight_end=2.0)
    soft = _distiller(tiny_teacher, cfg, build_loss("soft", cfg))
    assert set(soft.schedules) == {"temperature", "alpha"}
    width = tiny_teacher.pooled_size
    loss = build_loss("soft+hidden", cfg, layer_terms=False)
    hidden = _distiller(tiny_teacher, cfg, loss, tiny_teacher, student_pooled_dim=width, teacher_pooled_dim=width)
    # The pooled MSE starts at weight 0 but is scheduled to rise: its projection and inputs are still set up.
    assert hidden.needs_pooled and "pooled_proj" in hidden.extras
    hidden.on_step(4, 5)
    assert hidden.loss.weights["hidden"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------ end to end, tiny models


def _train_cfg() -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=0, progress=False, device="cpu", seed=5)


@pytest.fixture(scope="module")
def teacher_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher")
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher"})
    return path


def _config(tiny_bert_dir, distill: DistillConfig) -> Config:
    return Config(
        data=DataConfig(max_len=32),
        teacher=TeacherConfig(backbone=str(tiny_bert_dir), train=_train_cfg()),
        student=StudentConfig(preset="bert-tiny-2l-128", num_layers=2, hidden_size=32, train=_train_cfg()),
        distill=distill,
    )


def _weights(path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_constant_schedule_reproduces_fixed_temperature_exactly(
    teacher_dir, tiny_bert_dir, tiny_splits, tmp_path, monkeypatch
):
    fixed_cfg = _config(tiny_bert_dir, DistillConfig(temperature=4.0, alpha=0.7))
    # The fixed-T run: the distiller is given no schedules at all, so the loss keeps its built values.
    original = Distiller.__init__

    def without_schedules(self, *args, **kwargs):
        kwargs["schedules"] = None
        original(self, *args, **kwargs)

    monkeypatch.setattr(Distiller, "__init__", without_schedules)
    fixed = textkd.distill(fixed_cfg, teacher_dir, tmp_path / "fixed", methods=["soft"], splits=tiny_splits)[0]
    monkeypatch.setattr(Distiller, "__init__", original)
    constant_cfg = replace(
        fixed_cfg, distill=replace(fixed_cfg.distill, temperature_schedule="constant", temperature_end=1.0)
    )  # the end is ignored when constant
    constant = textkd.distill(constant_cfg, teacher_dir, tmp_path / "constant", methods=["soft"], splits=tiny_splits)[0]
    a, b = _weights(fixed.output_dir), _weights(constant.output_dir)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rows = [json.loads(line) for line in (constant.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["temperature"] for row in rows] == [4.0, 4.0]


def test_decaying_temperature_is_logged_saved_and_changes_training(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir, DistillConfig(temperature=8.0, temperature_schedule="linear", temperature_end=1.0))
    result = textkd.distill(cfg, teacher_dir, tmp_path / "decay", methods=["soft"], splits=tiny_splits)[0]
    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["temperature"] == pytest.approx(1.0)  # the last step of the run
    assert 1.0 < rows[0]["temperature"] < 8.0  # the end of epoch 1: part way down
    assert rows[0]["alpha"] == pytest.approx(0.7)
    info = json.loads((result.output_dir / "textkd_model.json").read_text())
    assert info["schedules"] == {"temperature": "linear 8 -> 1", "alpha": "constant 0.7"}
    saved = (result.output_dir / "config.yaml").read_text()
    assert "temperature_schedule: linear" in saved and "temperature_end: 1.0" in saved
    fixed = textkd.distill(
        _config(tiny_bert_dir, DistillConfig()), teacher_dir, tmp_path / "fixed", methods=["soft"], splits=tiny_splits
    )[0]
    a, b = _weights(result.output_dir), _weights(fixed.output_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_the_logit_mse_has_no_temperature_schedule(teacher_dir, tiny_bert_dir, tiny_splits, tmp_path):
    cfg = _config(tiny_bert_dir, DistillConfig(kd_loss="mse", alpha_schedule="linear", alpha_end=0.5))
    result = textkd.distill(cfg, teacher_dir, tmp_path / "mse", methods=["soft"], splits=tiny_splits)[0]
    info = json.loads((result.output_dir / "textkd_model.json").read_text())
    assert info["loss"].startswith("0.7 * kd_logit_mse + ") and info["schedules"] == {"alpha": "linear 0.7 -> 0.5"}
    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert "temperature" not in rows[-1] and rows[-1]["alpha"] == pytest.approx(0.5)
    card = (result.output_dir / "README.md").read_text(encoding="utf-8")
    assert "| KD term | mse |" in card and "temperature T" not in card


def test_cli_kd_alias_and_missing_end(tmp_path):
    from typer.testing import CliRunner

    from textkd.cli import app

    result = CliRunner().invoke(app, ["distill", "--teacher", str(tmp_path), "--kd.temperature-schedule", "linear"])
    assert result.exit_code == 2
    assert "distill.temperature_schedule is 'linear' but distill.temperature_end is not set" in result.output
