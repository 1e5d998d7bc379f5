"""Named weighted sums of loss terms, and the registry of distillation methods.

A distillation loss is `sum_i weight_i * term_i(inputs)`. Every term is reported unweighted in
`LossOutput.parts` so a run logs what each part does, and `repr(loss)` states the recipe in one line:

    0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy

Terms read keyword inputs with these names (the trainer builds them from two `ClassifierOutput`s):

| input                   | shape                        | used by                               |
|-------------------------|------------------------------|---------------------------------------|
| `student_logits`        | (B, C)                       | every method                          |
| `teacher_logits`        | (B, C)                       | hard, soft, soft+hidden               |
| `labels`                | (B,) int64                   | none, soft, soft+hidden; hard if w>0  |
| `label_count`           | 0-dim float, optional        | with `labels`: several processes      |
| `class_weights`         | (C,), optional               | with `labels`: train.class_weights    |
| `student_pooled`        | (B, H_teacher), projected    | soft+hidden ("hidden")                |
| `teacher_pooled`        | (B, H_teacher)               | soft+hidden ("hidden")                |
| `student_hidden_states` | list of (B, L, H_teacher)    | soft+hidden ("layer"), projected      |
| `teacher_hidden_states` | list of (B, L, H_teacher)    | soft+hidden ("layer"), via layer_map  |
| `student_attentions`    | list of (B, h_student, L, L) | soft+hidden ("attention")             |
| `teacher_attentions`    | list of (B, h_teacher, L, L) | soft+hidden ("attention"), layer_map  |
| `attention_mask`        | (B, L), optional             | "layer" and "attention" masking       |

Alpha convention (as the first tutorial, and `DistillConfig`): `alpha` weights the KD term,
loss = alpha * KD + (1 - alpha) * CE. torchdistill puts alpha on the CE term; use 1 - alpha to match it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from textkd.config import DistillConfig
from textkd.errors import ConfigError
from textkd.losses import functional as LF

# Short names used when a term's constant parameters are printed.
_PARAM_SHORT = {"temperature": "T"}


def _num(value: Any) -> str:
    """A weight or parameter for `repr`: 0.3 rather than 0.30000000000000004, and 1.0 rather than 1."""
    if isinstance(value, Tensor):
        value = value.item()
    text = f"{float(value):.6g}"
    return text if any(ch in text for ch in ".en") else text + ".0"


@dataclass
class LossOutput:
    """One evaluation of a `WeightedSumLoss`.

    Attributes:
        total: the scalar to back-propagate, sum(weights[k] * parts[k]).
        parts: each computed term, unweighted, keyed by term name.
        weights: the weight each computed term had at this step (zero-weight terms are absent).
    """

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def detached_parts(self) -> dict[str, float]:
        """Unweighted parts as python floats, for logging (e.g. {"kd": 0.41, "ce": 1.2})."""
        return {name: float(value.detach().float().item()) for name, value in self.parts.items()}


@dataclass
class LossTerm:
    """A loss function bound to named inputs and constant parameters.

    Attributes:
        fn: a function of `functional.py` (or any callable returning a scalar tensor).
        inputs: fn argument -> input name, e.g. {"student_hidden": "student_pooled"}.
        params: constant keyword arguments, e.g. {"temperature": 4.0}; change them with `set_param`.
        optional: fn arguments that may be absent from the inputs or None (left to the fn's default).
        label: the name shown in `repr`; default the fn's name.

    Example:
        >>> logits = {"student_logits": "student_logits", "teacher_logits": "teacher_logits"}
        >>> LossTerm(LF.kd_kl_div, logits, params={"temperature": 4.0})
        kd_kl_div(T=4.0)
    """

    fn: Callable[..., Tensor]
    inputs: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    optional: tuple[str, ...] = ()
    label: str | None = None

    @property
    def required_inputs(self) -> set[str]:
        return {name for arg, name in self.inputs.items() if arg not in self.optional}

    def __call__(self, **inputs: Any) -> Tensor:
        kwargs = dict(self.params)
        for arg, name in self.inputs.items():
            if inputs.get(name) is not None:
                kwargs[arg] = inputs[name]
            elif arg not in self.optional:
                raise KeyError(f"loss term {self!r} needs input {name!r}; got {sorted(inputs)}")
        return self.fn(**kwargs)

    def __repr__(self) -> str:
        name = self.label or getattr(self.fn, "__name__", type(self.fn).__name__)
        if not self.params:
            return name
        shown = ", ".join(f"{_PARAM_SHORT.get(k, k)}={_num(v)}" for k, v in self.params.items())
        return f"{name}({shown})"


class WeightedSumLoss:
    """A named weighted sum of loss terms; terms with weight 0 are not computed.

    Args:
        terms: {name: (weight, fn)} in display order; `fn(**inputs)` returns a scalar tensor
            (a `LossTerm`, or any callable that accepts and ignores extra keyword inputs).

    Example:
        >>> loss = build_loss("soft", DistillConfig(temperature=4.0, alpha=0.7))
        >>> loss
        0.7 * kd_kl_div(T=4.0) + 0.3 * cross_entropy
        >>> out = loss(student_logits=torch.zeros(2, 3), teacher_logits=torch.zeros(2, 3),
        ...            labels=torch.tensor([0, 1]))
        >>> sorted(out.parts)
        ['ce', 'kd']
    """

    def __init__(self, terms: Mapping[str, tuple[float, Callable[..., Tensor]]]) -> None:
        if not terms:
            raise ValueError("a WeightedSumLoss needs at least one term")
        self.terms: dict[str, Callable[..., Tensor]] = {name: fn for name, (_, fn) in terms.items()}
        self.weights: dict[str, float] = {name: float(weight) for name, (weight, _) in terms.items()}

    def __call__(self, **inputs: Any) -> LossOutput:
        active = {name: w for name, w in self.weights.items() if w != 0}
        if not active:
            raise ValueError(f"every loss weight is zero: {self!r}")
        parts = {name: self.terms[name](**inputs) for name in active}
        total = torch.stack([active[name] * value for name, value in parts.items()]).sum()
        return LossOutput(total=total, parts=parts, weights=active)

    def set_weight(self, name: str, value: float) -> None:
        """Change one term's weight (weight schedules call this every step)."""
        self._check_name(name)
        self.weights[name] = float(value)

    def set_param(self, name: str, key: str, value: Any) -> None:
        """Change a constant of one term, e.g. `set_param("kd", "temperature", 2.0)` for a T schedule."""
        self._check_name(name)
        term = self.terms[name]
        if not isinstance(term, LossTerm) or key not in term.params:
            raise KeyError(f"loss term {name!r} has no parameter {key!r}")
        term.params[key] = value

    @property
    def required_inputs(self) -> set[str]:
        """Input names the non-zero terms need (tells the trainer whether to ask for hidden states)."""
        needed: set[str] = set()
        for name, weight in self.weights.items():
            if weight != 0:
                needed |= getattr(self.terms[name], "required_inputs", set())
        return needed

    def _check_name(self, name: str) -> None:
        if name not in self.terms:
            raise KeyError(f"no loss term {name!r}; terms are {list(self.terms)}")

    def __repr__(self) -> str:
        return " + ".join(f"{_num(w)} * {self.terms[name]!r}" for name, w in self.weights.items())


# ------------------------------------------------------------------------------------------ registry

# {term name: (weight, fn)}, what a method builder returns and `WeightedSumLoss` takes.
Terms = dict[str, tuple[float, Callable[..., Tensor]]]


def _same_names(*names: str, **renamed: str) -> dict[str, str]:
    """An input binding where the fn's arguments carry the input names (plus a few renamed ones)."""
    return {**{name: name for name in names}, **renamed}


def _ce() -> LossTerm:
    inputs = _same_names("student_logits", "labels", "class_weights", normalizer="label_count")
    return LossTerm(LF.cross_entropy, inputs, optional=("normalizer", "class_weights"))


KD_LOSSES = ("kl", "mse")


def _kd(cfg: DistillConfig) -> LossTerm:
    inputs = _same_names("student_logits", "teacher_logits")
    if cfg.kd_loss == "mse":
        if cfg.temperature_schedule != "constant":
            raise ConfigError(
                "distill.kd_loss=mse has no temperature to schedule",
                hint="leave distill.temperature_schedule at constant, or use distill.kd_loss=kl",
            )
        return LossTerm(LF.kd_logit_mse, inputs)
    if cfg.kd_loss != "kl":
        close = difflib.get_close_matches(str(cfg.kd_loss), KD_LOSSES, n=1, cutoff=0.4)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown distill.kd_loss {cfg.kd_loss!r}{guess}", hint="use kl or mse")
    return LossTerm(LF.kd_kl_div, inputs, params={"temperature": cfg.temperature})


def _none(cfg: DistillConfig, layer_terms: bool) -> Terms:
    return {"ce": (1.0, _ce())}


def _hard(cfg: DistillConfig, layer_terms: bool) -> Terms:
    gold = _fraction(cfg.hard_gold_weight, "hard_gold_weight")
    term = LossTerm(LF.hard_label_ce, _same_names("student_logits", "teacher_logits"))
    return {"hard": (1.0 - gold, term), "ce": (gold, _ce())}


def _soft(cfg: DistillConfig, layer_terms: bool) -> Terms:
    alpha = _fraction(cfg.alpha, "alpha")
    if cfg.temperature <= 0:
        raise ConfigError(f"distill.temperature must be > 0, got {cfg.temperature}", hint="try 2.0 to 8.0")
    return {"kd": (alpha, _kd(cfg)), "ce": (1.0 - alpha, _ce())}


def _soft_hidden(cfg: DistillConfig, layer_terms: bool) -> Terms:
    terms = _soft(cfg, layer_terms)
    pooled = {"student_hidden": "student_pooled", "teacher_hidden": "teacher_pooled"}
    terms["hidden"] = (_weight(cfg.hidden_weight, "hidden_weight"), LossTerm(LF.hidden_mse, pooled))
    if layer_terms:
        hidden = _same_names("student_hidden_states", "teacher_hidden_states", mask="attention_mask")
        attn = _same_names("student_attentions", "teacher_attentions", mask="attention_mask")
        layer = LossTerm(LF.layer_hidden_mse, hidden, optional=("mask",))
        attention = LossTerm(LF.layer_attention_mse, attn, optional=("mask",))
        terms["layer"] = (_weight(cfg.layer_weight, "layer_weight"), layer)
        terms["attention"] = (_weight(cfg.attention_weight, "attention_weight"), attention)
    return terms


def _fraction(value: float, key: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"distill.{key} must be in [0, 1], got {value}")
    return float(value)


def _weight(value: float, key: str) -> float:
    if value < 0:
        raise ConfigError(f"distill.{key} must be >= 0, got {value}", hint="use 0 to switch the term off")
    return float(value)


LOSS_METHODS: dict[str, Callable[[DistillConfig, bool], Terms]] = {
    "none": _none,
    "hard": _hard,
    "soft": _soft,
    "soft+hidden": _soft_hidden,
}


def build_loss(method: str, cfg: DistillConfig | None = None, *, layer_terms: bool = True) -> WeightedSumLoss:
    """The loss of a distillation method, weighted from `cfg`.

    Methods (stable keys; term names in brackets are the keys of `LossOutput.parts`):

    - "none": [ce] 1.0 * cross_entropy — the student alone, the baseline.
    - "hard": [hard] (1 - w) * hard_label_ce + [ce] w * cross_entropy, w = cfg.hard_gold_weight
      (default 0: the teacher's argmax replaces the gold label).
    - "soft": [kd] alpha * kd_kl_div(T) + [ce] (1 - alpha) * cross_entropy (Hinton et al. 2015);
      with cfg.kd_loss = "mse" the KD term is kd_logit_mse (Tang et al. 2019), in "soft+hidden" too.
    - "soft+hidden": "soft" + [hidden] hidden_weight * hidden_mse(pooled)
      + [layer] layer_weight * layer_hidden_mse + [attention] attention_weight * layer_attention_mse
      (TinyBERT-style). `layer_terms=False` leaves out the last two (students without transformer
      layers, e.g. the BiLSTM).

    Args:
        method: one of `LOSS_METHODS`.
        cfg: weights and temperature; default `DistillConfig()`.
        layer_terms: include the per-layer hidden/attention terms of "soft+hidden".

    Raises:
        ConfigError: unknown method (with the closest valid one) or a weight out of range.

    Example:
        >>> build_loss("hard", DistillConfig(hard_gold_weight=0.2))
        0.8 * hard_label_ce + 0.2 * cross_entropy
    """
    cfg = cfg if cfg is not None else DistillConfig()
    if method not in LOSS_METHODS:
        valid = ", ".join(LOSS_METHODS)
        close = difflib.get_close_matches(method, list(LOSS_METHODS), n=1, cutoff=0.4)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown distill.method {method!r}{guess}", hint=f"valid methods: {valid}")
    return WeightedSumLoss(LOSS_METHODS[method](cfg, layer_terms))
