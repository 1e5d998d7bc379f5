"""Distillation losses: correctness against hand-computed references and the composition contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from textkd.config import DistillConfig
from textkd.errors import ConfigError
from textkd.losses import (
    LOSS_METHODS,
    LossOutput,
    WeightedSumLoss,
    attention_mse,
    build_loss,
    cross_entropy,
    hard_label_ce,
    hidden_mse,
    kd_kl_div,
    kd_logit_mse,
    layer_attention_mse,
    layer_hidden_mse,
    layer_map,
    soft_targets,
)


def _logits(seed: int, shape: tuple[int, ...] = (5, 7)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def _reference_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> float:
    """T^2 * mean_b sum_c p_t * (log p_t - log p_s), in float64, written out by hand."""
    s, t = student.double() / temperature, teacher.double() / temperature
    log_ps = s - torch.logsumexp(s, dim=-1, keepdim=True)
    log_pt = t - torch.logsumexp(t, dim=-1, keepdim=True)
    kl_rows = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
    return float(temperature**2 * kl_rows.mean())


# ------------------------------------------------------------------------------------------ KD term


def test_kd_is_zero_for_identical_logits() -> None:
    z = _logits(0)
    assert kd_kl_div(z, z, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    # Softmax ignores a per-row shift, so shifted logits are the same distribution.
    assert kd_kl_div(z, z + 5.0, 2.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_matches_float64_reference(temperature: float) -> None:
    student, teacher = _logits(1), _logits(2)
    expected = _reference_kd(student, teacher, temperature)
    assert kd_kl_div(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-5)
    # The T^2 factor is there: the result is T^2 times the plain batch-mean KL of the tempered softmaxes.
    plain_kl = F.kl_div(
        F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1), reduction="batchmean"
    )
    assert kd_kl_div(student, teacher, temperature).item() == pytest.approx(temperature**2 * plain_kl.item(), rel=1e-5)


def test_kd_differs_from_the_tutorial_bug() -> None:
    student, teacher, temperature = _logits(3), _logits(4), 4.0
    # The tutorial passed probabilities as the target while declaring log_target=True.
    buggy = (
        F.kl_div(
            F.log_softmax(student / temperature, -1),
            F.softmax(teacher / temperature, -1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )
    correct = kd_kl_div(student, teacher, temperature).item()
    assert correct == pytest.approx(_reference_kd(student, teacher, temperature), rel=1e-5)
    assert abs(buggy.item() - correct) > 0.1


def test_kd_accepts_a_tensor_temperature_and_rejects_non_positive() -> None:
    student, teacher = _logits(5), _logits(6)
    assert kd_kl_div(student, teacher, torch.tensor(2.0)).item() == pytest.approx(
        kd_kl_div(student, teacher, 2.0).item()
    )
    with pytest.raises(ValueError, match="temperature"):
        kd_kl_div(student, teacher, 0.0)


def test_kd_is_float32_under_autocast_and_gives_gradients() -> None:
    student = _logits(7).bfloat16().requires_grad_()
    teacher = _logits(8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = kd_kl_div(student, teacher, 4.0)
    assert loss.dtype == torch.float32
    expected = _reference_kd(student.detach().float(), teacher.float(), 4.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_logit_mse_matches_a_hand_reference_and_ignores_row_shifts() -> None:
    student, teacher = _logits(1), _logits(2)
    s, t = student.double(), teacher.double()
    diff = (s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))
    expected = float((diff**2).sum(-1).mean() / s.shape[-1])
    assert kd_logit_mse(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    shifts = torch.arange(5.0).unsqueeze(1)  # a different constant per row changes nothing
    assert kd_logit_mse(student + shifts, teacher - 3 * shifts).item() == pytest.approx(expected, rel=1e-5)
    assert kd_logit_mse(teacher, teacher + shifts).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_at_a_high_temperature_tends_to_half_the_logit_mse() -> None:
    # Hinton et al. 2015, section 2.1: T^2 * KL -> (1 / 2C) * sum_c (centred logit difference)^2 as T grows.
    student, teacher = _logits(3), _logits(4)
    assert kd_kl_div(student, teacher, 1000.0).item() == pytest.approx(
        0.5 * kd_logit_mse(student, teacher).item(), rel=1e-2
    )
    assert kd_kl_div(student, teacher, 1.0).item() != pytest.approx(
        0.5 * kd_logit_mse(student, teacher).item(), rel=1e-1
    )


def test_soft_targets_are_tempered_softmax() -> None:
    z = _logits(9)
    probs = soft_targets(z, 3.0)
    torch.testing.assert_close(probs, torch.softmax(z / 3.0, -1))
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(z)))


# ------------------------------------------------------------------------------------- hard labels


def test_hard_label_ce_uses_teacher_argmax() -> None:
    student, teacher = _logits(10), _logits(11)
    expected = cross_entropy(student, teacher.argmax(-1))
    assert hard_label_ce(student, teacher).item() == pytest.approx(expected.item())
    assert cross_entropy(student, teacher.argmax(-1)).item() == pytest.approx(
        F.cross_entropy(student, teacher.argmax(-1)).item()
    )


# ------------------------------------------------------------------------------- hidden / attention


def test_hidden_mse_pooled_and_masked() -> None:
    student, teacher = _logits(12, (3, 8)), _logits(13, (3, 8))
    assert hidden_mse(student, teacher).item() == pytest.approx(F.mse_loss(student, teacher).item())

    s, t = _logits(14, (2, 4, 6)), _logits(15, (2, 4, 6))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    expected = F.mse_loss(s[mask.bool()], t[mask.bool()]).item()
    assert hidden_mse(s, t, mask).item() == pytest.approx(expected, rel=1e-6)
    s_noisy_pad = s.clone()
    s_noisy_pad[~mask.bool()] = 1e3
    assert hidden_mse(s_noisy_pad, t, mask).item() == pytest.approx(expected, rel=1e-6)


def test_hidden_mse_rejects_unprojected_student() -> None:
    with pytest.raises(ValueError, match="project"):
        hidden_mse(torch.zeros(2, 4), torch.zeros(2, 8))


def test_attention_mse_ignores_padded_positions() -> None:
    teacher = torch.softmax(_logits(16, (2, 3, 4, 4)), -1)
    student = teacher.clone()
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    student[0, :, 3, :] = 9.0  # padded query row
    student[0, :, :, 3] = 9.0  # padded key column
    assert attention_mse(student, teacher, mask).item() == pytest.approx(0.0, abs=1e-7)
    assert attention_mse(student, teacher).item() > 1.0
    student[1, 0, 0, 0] += 1.0  # a real pair: counted, averaged over 3 heads and all valid pairs
    expected = 1.0 / (3 * (9 + 16))
    assert attention_mse(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)


def test_attention_mse_averages_heads_when_counts_differ() -> None:
    teacher = torch.softmax(_logits(17, (2, 12, 5, 5)), -1)
    student = teacher.mean(1, keepdim=True).expand(2, 4, 5, 5)
    assert attention_mse(student, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_layer_terms_average_over_layers() -> None:
    student = [_logits(i, (2, 3, 4)) for i in range(3)]
    teacher = [_logits(10 + i, (2, 3, 4)) for i in range(3)]
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    expected = torch.stack([hidden_mse(s, t, mask) for s, t in zip(student, teacher, strict=True)]).mean()
    assert layer_hidden_mse(student, teacher, mask).item() == pytest.approx(expected.item())
    attn = [torch.softmax(_logits(20 + i, (2, 2, 3, 3)), -1) for i in range(2)]
    assert layer_attention_mse(attn, attn, mask).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="layer_map"):
        layer_hidden_mse(student, teacher[:2])


def test_layer_map_is_tinybert_uniform() -> None:
    assert layer_map(4, 12) == [0, 3, 6, 9, 12]
    assert layer_map(3, 6) == [0, 2, 4, 6]
    assert layer_map(6, 6) == list(range(7))
    assert layer_map(4, 6)[-1] == 6


# -------------------------------------------------------------------------------------- composite


def _inputs(batch: int = 4, classes: int = 5) -> dict[str, object]:
    hidden = [_logits(30 + i, (batch, 6, 8)) for i in range(3)]
    return {
        "student_logits": _logits(40, (batch, classes)).requires_grad_(),
        "teacher_logits": _logits(41, (batch, classes)),
        "labels": torch.arange(batch) % classes,
        "student_pooled": _logits(42, (batch, 8)),
        "teacher_pooled": _logits(43, (batch, 8)),
        "student_hidden_states": hidden,
        "teacher_hidden_states": [h + 0.1 for h in hidden],
        "student_attentions": [torch.softmax(_logits(50 + i, (batch, 2, 6, 6)), -1) for i in range(2)],
        "teacher_attentions": [torch.softmax(_logits(60 + i, (batch, 4, 6, 6)), -1) for i in range(2)],
        "attention_mask": torch.ones(batch, 6, dtype=torch.long),
    }


def test_weighted_sum_parts_weights_total_are_consistent() -> None:
    loss = build_loss("soft+hidden", DistillConfig(alpha=0.6, hidden_weight=0.5, layer_weight=2.0))
    out = loss(**_inputs())
    assert isinstance(out, LossOutput)
    assert set(out.parts) == {"kd", "ce", "hidden", "layer", "attention"}
    assert out.weights == pytest.approx({"kd": 0.6, "ce": 0.4, "hidden": 0.5, "layer": 2.0, "attention": 1.0})
    expected = sum(out.weights[k] * out.parts[k] for k in out.parts)
    assert out.total.item() == pytest.approx(float(expected.detach()), rel=1e-6)
    assert out.parts["layer"].item() == pytest.approx(0.01, rel=1e-4)  # every state off by 0.1
    logged = out.detached_parts()
    assert set(logged) == set(out.parts) and all(isinstance(v, float) for v in logged.values())
    out.total.backward()


def test_repr_reads_like_a_formula() -> None:
    assert repr(build_loss("soft", DistillConfig(temperature=4.0, alpha=0.7))) == (
        "0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy"
    )
    assert repr(build_loss("none")) == "1.0 * cross_entropy"
    assert repr(build_loss("hard", DistillConfig(hard_gold_weight=0.25))) == (
        "0.75 * hard_label_ce + 0.25 * cross_entropy"
    )


def test_zero_weight_term_is_skipped_and_its_input_may_be_missing() -> None:
    loss = build_loss("soft", DistillConfig(alpha=1.0))
    inputs = _inputs()
    del inputs["labels"]
    out = loss(**inputs)
    assert set(out.parts) == {"kd"}
    assert loss.required_inputs == {"student_logits", "teacher_logits"}
    loss.set_weight("ce", 0.5)
    with pytest.raises(KeyError, match="labels"):
        loss(**inputs)


def test_set_weight_and_set_param() -> None:
    loss = build_loss("soft", DistillConfig(temperature=4.0, alpha=0.5))
    inputs = _inputs()
    loss.set_param("kd", "temperature", 2.0)
    loss.set_weight("ce", 0.0)
    out = loss(**inputs)
    expected = kd_kl_div(inputs["student_logits"], inputs["teacher_logits"], 2.0)
    assert out.total.item() == pytest.approx(0.5 * expected.item())
    assert repr(loss) == "0.5 * kd_kl_div(T=2.0) + 0.0 * cross_entropy"
    with pytest.raises(KeyError):
        loss.set_weight("nope", 1.0)


def test_plain_callables_compose() -> None:
    loss = WeightedSumLoss({"a": (2.0, lambda **kw: kw["x"].sum()), "b": (0.0, lambda **kw: kw["missing"])})
    out = loss(x=torch.ones(3))
    assert out.total.item() == 6.0 and set(out.parts) == {"a"}


@pytest.mark.parametrize("method", sorted(LOSS_METHODS))
def test_build_loss_every_method_runs(method: str) -> None:
    out = build_loss(method, DistillConfig(hard_gold_weight=0.3))(**_inputs())
    assert out.total.ndim == 0 and torch.isfinite(out.total)


def test_build_loss_without_layer_terms_for_bilstm_students() -> None:
    loss = build_loss("soft+hidden", DistillConfig(), layer_terms=False)
    assert list(loss.weights) == ["kd", "ce", "hidden"]
    inputs = {k: v for k, v in _inputs().items() if "states" not in k and "attentions" not in k}
    assert set(loss(**inputs).parts) == {"kd", "ce", "hidden"}


def test_hard_method_weights() -> None:
    inputs = _inputs()
    out = build_loss("hard", DistillConfig(hard_gold_weight=0.0))(**inputs)
    assert set(out.parts) == {"hard"}
    expected = hard_label_ce(inputs["student_logits"], inputs["teacher_logits"])
    assert out.total.item() == pytest.approx(expected.item())


def test_soft_with_the_logit_mse() -> None:
    cfg = DistillConfig(kd_loss="mse")
    loss = build_loss("soft", cfg)
    assert repr(loss) == "0.7 * kd_logit_mse + 0.3 * cross_entropy"
    inputs = _inputs()
    expected = (
        0.7 * kd_logit_mse(inputs["student_logits"], inputs["teacher_logits"]).item()
        + 0.3 * cross_entropy(inputs["student_logits"], inputs["labels"]).item()
    )
    assert loss(**inputs).total.item() == pytest.approx(expected, rel=1e-5)
    assert repr(build_loss("soft+hidden", cfg, layer_terms=False)).startswith("0.7 * kd_logit_mse + ")
    with pytest.raises(ConfigError, match="unknown distill.kd_loss 'mes'; did you mean 'mse'"):
        build_loss("soft", DistillConfig(kd_loss="mes"))
    with pytest.raises(ConfigError, match="kd_loss=mse has no temperature to schedule"):
        build_loss("soft", DistillConfig(kd_loss="mse", temperature_schedule="linear", temperature_end=1.0))


def test_unknown_method_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'soft'"):
        build_loss("sfot", DistillConfig())
    with pytest.raises(ConfigError, match="valid methods"):
        build_loss("zzz", DistillConfig())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": 0.0}, "temperature"),
        ({"layer_weight": -1.0}, "layer_weight"),
    ],
)
def test_bad_weights_raise_config_error(overrides: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        build_loss("soft+hidden", DistillConfig(**overrides))


def test_cross_entropy_label_smoothing_matches_torch_and_ignores_unlabelled_rows():
    logits = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, -100, 6, 2])
    ours = cross_entropy(logits, labels, label_smoothing=0.1)
    reference = F.cross_entropy(logits[labels != -100], labels[labels != -100], label_smoothing=0.1)
    torch.testing.assert_close(ours, reference)
    assert not torch.equal(ours, cross_entropy(logits, labels))


def test_class_weights_weight_the_gold_term_only():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 0, 0, 1, -100])
    weights = torch.tensor([0.5, 2.0, 0.0])
    loss = build_loss("soft", DistillConfig())
    plain = loss(student_logits=student, teacher_logits=teacher, labels=labels)
    weighted = loss(student_logits=student, teacher_logits=teacher, labels=labels, class_weights=weights)
    expected = F.cross_entropy(student[:4], labels[:4], weight=weights, reduction="sum") / 4
    torch.testing.assert_close(weighted.parts["ce"], expected)
    torch.testing.assert_close(weighted.parts["kd"], plain.parts["kd"])  # the teacher's term is not weighted
    assert not torch.isclose(weighted.parts["ce"], plain.parts["ce"])
