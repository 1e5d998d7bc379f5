"""Distillation losses as pure tensor functions.

Every function takes tensors and returns a scalar tensor; none holds state. They are computed in float32
even when the inputs come out of a bf16/fp16 autocast region, because a softmax over many classes at a
high temperature loses most of its signal in 8 mantissa bits. `composite.py` names and weights them.

Shapes: B batch, C classes, L tokens, H hidden width, h attention heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _temperature(temperature: float | Tensor, like: Tensor) -> Tensor:
    """T as a 0-dim float32 tensor on `like`'s device (a python float or a scheduled tensor)."""
    # Only python numbers are range-checked: reading a GPU tensor's value would sync every step.
    if isinstance(temperature, (int, float)) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    value = torch.as_tensor(temperature, dtype=torch.float32, device=like.device)
    if value.ndim != 0:
        raise ValueError(f"temperature must be a scalar, got shape {tuple(value.shape)}")
    return value


def cross_entropy(
    student_logits: Tensor,
    labels: Tensor,
    normalizer: Tensor | float | None = None,
    label_smoothing: float = 0.0,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of the student against gold labels, averaged over the batch's labelled rows.

    Args:
        student_logits: (B, C) unnormalised scores.
        labels: (B,) int64 class ids; -100 rows (texts only the teacher labelled) are ignored.
        normalizer: what the summed loss is divided by instead of this batch's labelled rows. Several
            processes pass (labelled rows of the global batch) / (processes): their gradients, averaged,
            are then those of one process on the global batch, however the labelled rows fall.
        label_smoothing: eps in [0, 1): the target puts 1 - eps on the gold class and eps / C on every class.
        class_weights: (C,) weight of each gold class's rows (`balanced_class_weights`); the weighted sum is
            still divided by the labelled rows, so weights that average 1 over the data keep the loss's scale.

    Returns:
        A float32 scalar.

    Example:
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3])).item()  # log(4)
        1.386...
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([-100, -100])).item()  # no gold label in the batch
        0.0
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, -100]), normalizer=2.0).item()  # log(4) / 2
        0.693...
        >>> weights = torch.tensor([3.0, 1.0, 1.0, 1.0])
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, 1]), class_weights=weights).item()  # 2 log(4)
        2.772...
    """
    # A sum over labelled rows, 0 for a batch without any (F.cross_entropy's mean would be NaN); no host sync.
    weight = class_weights.to(student_logits.device, torch.float32) if class_weights is not None else None
    total = F.cross_entropy(
        student_logits.float(),
        labels,
        weight=weight,
        reduction="sum",
        ignore_index=-100,
        label_smoothing=label_smoothing,
    )
    if normalizer is None:
        normalizer = (labels != -100).sum()
    # Without labelled rows `total` is 0, so the clamp only keeps 0 / 0 from being NaN.
    return total / torch.as_tensor(normalizer, dtype=torch.float32, device=total.device).clamp(min=1e-6)


def balanced_class_weights(labels: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Per-class weights n / (C * n_c) over the n gold labels (-100 rows skipped) of the C classes present:
    rare classes weigh more, every class's rows weigh the same in total, and the weight of a row averages 1.
    A class with no rows gets 0 (it never occurs in the loss).

    Example:
        >>> balanced_class_weights([0, 0, 0, 1, -100], 3)
        tensor([0.6667, 2.0000, 0.0000])
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    labels = labels[labels >= 0]
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = int((counts > 0).sum())
    weights = torch.zeros(num_classes)
    weights[counts > 0] = len(labels) / (present * counts[counts > 0])
    return weights


def soft_targets(teacher_logits: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """The teacher's softened class distribution softmax(z_teacher / T).

    Args:
        teacher_logits: (B, C).
        temperature: T > 0; larger T spreads mass onto the non-argmax classes ("dark knowledge").

    Returns:
        (B, C) float32 probabilities; each row sums to 1.

    Example:
        >>> soft_targets(torch.tensor([[2.0, 0.0]]), 2.0)
        tensor([[0.7311, 0.2689]])
    """
    return F.softmax(teacher_logits.float() / _temperature(temperature, teacher_logits), dim=-1)


def kd_kl_div(student_logits: Tensor, teacher_logits: Tensor, temperature: float | Tensor = 4.0) -> Tensor:
    """Hinton's soft-target loss: T^2 * KL(p_teacher^T || p_student^T), averaged over the batch.

    Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network", arXiv:1503.02531::

        p^T = softmax(z / T)
        L_KD = T^2 * (1/B) * sum_b sum_c p_teacher^T[b, c] * (log p_teacher^T[b, c] - log p_student^T[b, c])

    The T^2 factor keeps the gradient scale of this term comparable to the hard-label term as T changes.
    Both sides go through `log_softmax` and `kl_div(..., log_target=True)`; passing probabilities where
    log-probabilities are expected (the tutorial's bug) gives a different, wrong number.

    Args:
        student_logits: (B, C) unnormalised student scores.
        teacher_logits: (B, C) unnormalised teacher scores (produced without gradient).
        temperature: T > 0, a python float or a 0-dim tensor (for schedules).

    Returns:
        A float32 scalar, 0 when the two logit rows are equal up to a per-row constant.

    Example:
        >>> z = torch.tensor([[1.0, 2.0, 3.0]])
        >>> kd_kl_div(z, z, temperature=4.0).item()
        0.0
    """
    t = _temperature(temperature, student_logits)
    student_log_probs = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, C)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (B, C)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * t * t


def kd_logit_mse(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean squared error between the student's and the teacher's logits (Tang et al. 2019's KD term).

    Tang, Lu, Liu, Mou, Vechtomova & Lin (2019), "Distilling Task-Specific Knowledge from BERT into Simple
    Neural Networks", arXiv:1903.12136, distil a BiLSTM from BERT by regressing the logits::

        L = (1/B) * (1/C) * sum_b sum_c ((z_s[b, c] - mean_c z_s[b]) - (z_t[b, c] - mean_c z_t[b]))^2

    Each row's mean is removed from both sides first: softmax ignores it, so the student is not asked to
    copy an offset that means nothing. There is no temperature; in the limit of a high temperature,
    `kd_kl_div` tends to half this value (Hinton et al. 2015, section 2.1), so this is the KD term that
    weighs every class's logit alike, the very unlikely ones too.

    Args:
        student_logits: (B, C) unnormalised student scores.
        teacher_logits: (B, C) unnormalised teacher scores (produced without gradient).

    Returns:
        A float32 scalar, 0 when the two logit rows are equal up to a per-row constant.

    Example:
        >>> kd_logit_mse(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[11.0, 12.0, 13.0]])).item()
        0.0
        >>> kd_logit_mse(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, -1.0]])).item()
        1.0
    """
    student = student_logits.float()
    teacher = teacher_logits.float()
    diff = (student - student.mean(dim=-1, keepdim=True)) - (teacher - teacher.mean(dim=-1, keepdim=True))
    return diff.pow(2).mean()


def hard_label_ce(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy of the student against the teacher's argmax ("hard" distillation).

    The teacher acts as a labeller: equal to `cross_entropy(student_logits, teacher_logits.argmax(-1))`.

    Args:
        student_logits: (B, C).
        teacher_logits: (B, C); only its argmax is used, so no gradient flows to it.

    Example:
        >>> hard_label_ce(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 5.0]])).item()  # log(2)
        0.693...
    """
    return cross_entropy(student_logits, teacher_logits.argmax(dim=-1))


def hidden_mse(student_hidden: Tensor, teacher_hidden: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error between student and teacher representations (TinyBERT's hidden-state loss).

    Jiao et al. (2020), "TinyBERT: Distilling BERT for Natural Language Understanding", arXiv:1909.10351:
    L_hidn = MSE(H_student W_h, H_teacher). The projection W_h belongs to the student model; this function
    receives the already projected states.

    Args:
        student_hidden: (B, H) pooled vectors or (B, L, H) token states, projected to the teacher's width.
        teacher_hidden: same shape as `student_hidden`.
        mask: optional (B, L) attention mask (1 = real token) for (B, L, H) inputs; padded positions are
            left out, so the loss is the mean over valid tokens and features.

    Returns:
        A float32 scalar.

    Example:
        >>> s, t = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
        >>> s[0, 2] = 100.0  # a padded token: ignored under the mask
        >>> hidden_mse(s, t, torch.tensor([[1, 1, 0]])).item()
        1.0
    """
    if student_hidden.shape != teacher_hidden.shape:
        raise ValueError(
            f"student hidden {tuple(student_hidden.shape)} != teacher hidden {tuple(teacher_hidden.shape)}; "
            "project the student states to the teacher width first"
        )
    student_hidden, teacher_hidden = student_hidden.float(), teacher_hidden.float()
    if mask is None:
        return F.mse_loss(student_hidden, teacher_hidden)
    if student_hidden.ndim != 3 or mask.shape != student_hidden.shape[:2]:
        shape = tuple(student_hidden.shape)
        raise ValueError(f"mask {tuple(mask.shape)} does not match hidden states {shape}")
    error = (student_hidden - teacher_hidden).pow(2).mean(dim=-1)  # (B, L)
    weight = mask.to(error.dtype)  # (B, L)
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


def attention_mse(student_attn: Tensor, teacher_attn: Tensor, mask: Tensor | None = None) -> Tensor:
    """MSE between attention maps over valid query/key pairs (TinyBERT's attention loss).

    Jiao et al. (2020), arXiv:1909.10351: L_attn = (1/h) sum_i MSE(A_student_i, A_teacher_i). TinyBERT
    compares pre-softmax scores; textkd models return post-softmax probabilities (what Hugging Face returns
    with `output_attentions=True`), so this compares attention distributions.

    When the head counts differ (a 12-head teacher, a 4-head student) there is no head-to-head pairing, so
    both sides are first averaged over heads and the mean maps are compared.

    Args:
        student_attn: (B, h_student, L, L).
        teacher_attn: (B, h_teacher, L, L).
        mask: optional (B, L) attention mask (1 = real token); a (query, key) pair counts only when both
            positions are real tokens.

    Returns:
        A float32 scalar: the mean squared error over heads and valid pairs.

    Example:
        >>> a = torch.full((1, 2, 3, 3), 1 / 3)
        >>> attention_mse(a, a.mean(1, keepdim=True), torch.tensor([[1, 1, 0]])).item()
        0.0
    """
    student_attn, teacher_attn = student_attn.float(), teacher_attn.float()
    if student_attn.shape[1] != teacher_attn.shape[1]:
        student_attn = student_attn.mean(dim=1, keepdim=True)  # (B, 1, L, L)
        teacher_attn = teacher_attn.mean(dim=1, keepdim=True)  # (B, 1, L, L)
    if student_attn.shape != teacher_attn.shape:
        raise ValueError(f"attention maps differ: {tuple(student_attn.shape)} vs {tuple(teacher_attn.shape)}")
    if mask is None:
        return F.mse_loss(student_attn, teacher_attn)
    valid = mask.bool()
    pairs = (valid[:, None, :, None] & valid[:, None, None, :]).to(student_attn.dtype)  # (B, 1, L, L)
    error = (student_attn - teacher_attn).pow(2) * pairs  # (B, h, L, L)
    return error.sum() / (pairs.sum() * student_attn.shape[1]).clamp_min(1.0)


def layer_hidden_mse(
    student_hidden_states: Sequence[Tensor],
    teacher_hidden_states: Sequence[Tensor],
    mask: Tensor | None = None,
) -> Tensor:
    """`hidden_mse` averaged over layer pairs (the i-th student state against the i-th teacher state).

    Args:
        student_hidden_states: list of (B, L, H) states, projected to the teacher width.
        teacher_hidden_states: list of (B, L, H) states already picked with `layer_map`, same length.
        mask: optional (B, L) attention mask.

    Example:
        >>> x = [torch.zeros(1, 2, 4), torch.ones(1, 2, 4)]
        >>> layer_hidden_mse(x, [torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)]).item()
        0.5
    """
    _check_layers(student_hidden_states, teacher_hidden_states, "hidden states")
    pairs = zip(student_hidden_states, teacher_hidden_states, strict=True)
    losses = [hidden_mse(s, t, mask) for s, t in pairs]
    return torch.stack(losses).mean()


def layer_attention_mse(
    student_attentions: Sequence[Tensor],
    teacher_attentions: Sequence[Tensor],
    mask: Tensor | None = None,
) -> Tensor:
    """`attention_mse` averaged over layer pairs.

    Args:
        student_attentions: list of (B, h_student, L, L) maps, one per student layer.
        teacher_attentions: list of (B, h_teacher, L, L) maps already picked with `layer_map`, same length.
        mask: optional (B, L) attention mask.

    Example:
        >>> a = [torch.full((1, 2, 3, 3), 1 / 3)]
        >>> layer_attention_mse(a, a).item()
        0.0
    """
    _check_layers(student_attentions, teacher_attentions, "attention maps")
    pairs = zip(student_attentions, teacher_attentions, strict=True)
    losses = [attention_mse(s, t, mask) for s, t in pairs]
    return torch.stack(losses).mean()


def _check_layers(student: Sequence[Tensor], teacher: Sequence[Tensor], what: str) -> None:
    if len(student) == 0 or len(student) != len(teacher):
        raise ValueError(
            f"need one teacher layer per student layer for {what}: got {len(student)} student and "
            f"{len(teacher)} teacher tensors; pick teacher layers with layer_map()"
        )


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """TinyBERT's uniform layer mapping: student layer m learns from teacher layer g(m) = m * N / M.

    Jiao et al. (2020), arXiv:1909.10351, with M student and N teacher transformer layers. Index 0 is the
    embedding output on both sides (`hidden_states[0]`), so the result has M + 1 entries, starts with 0 and
    ends with N. Use it as `teacher_hidden_states = [teacher.hidden_states[i] for i in mapping]` against all
    M + 1 student hidden states. Attention maps exist only for layers 1..M and `attentions[j]` is layer
    j + 1, so pair student `attentions[m - 1]` with teacher `attentions[mapping[m] - 1]` for m in 1..M.
    When N is not a multiple of M, g(m) is rounded down (the last layer still maps to N).

    Args:
        num_student_layers: M >= 1.
        num_teacher_layers: N >= 1.

    Returns:
        Teacher hidden-state indices for student hidden-state indices 0..M.

    Example:
        >>> layer_map(4, 12)
        [0, 3, 6, 9, 12]
    """
    if num_student_layers < 1 or num_teacher_layers < 1:
        raise ValueError(f"layer counts must be >= 1, got {num_student_layers} and {num_teacher_layers}")
    return [m * num_teacher_layers // num_student_layers for m in range(num_student_layers + 1)]
