"""Per-step schedules for distillation hyper-parameters: temperature, KD weight alpha, hidden-loss weight.

A schedule moves a value from `start` to `end` over the optimiser steps of a run:

| kind       | value at step s of N (p = s / (N - 1), so p = 0 at the first step and 1 at the last) |
|------------|-----------------------------------------------------------------------------------------|
| `constant` | start (the end value is ignored)                                                      |
| `linear`   | start + (end - start) * p                                                               |
| `cosine`   | end + (start - end) * (1 + cos(pi * p)) / 2                                            |

Both `linear` and `cosine` give `start` at the first step, `(start + end) / 2` half way and `end` at the
last step; cosine stays near `start` longer and reaches `end` more gently (TextBrewer's temperature and
weight schedulers offer the same shapes). The T^2 factor of the KD term follows the scheduled T because
`kd_kl_div` reads the temperature it is given at every step.

Example:
    >>> s = Schedule("linear", 8.0, 1.0)
    >>> [s.value(step, 5) for step in range(5)]
    [8.0, 6.25, 4.5, 2.75, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from textkd.config import DistillConfig
from textkd.errors import ConfigError

SCHEDULE_KINDS = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A value that moves from `start` to `end` over a run's optimiser steps (see the module table)."""

    kind: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ConfigError(f"unknown schedule {self.kind!r}", hint=f"use one of {', '.join(SCHEDULE_KINDS)}")

    def value(self, step: int, total_steps: int) -> float:
        """The value at 0-based optimiser `step` of `total_steps` (steps past the end keep the end value)."""
        if self.kind == "constant" or self.start == self.end:
            return float(self.start)
        p = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * p)
        return float(self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * p)) / 2.0)

    def describe(self) -> str:
        """One line for logs and reports, e.g. "linear 8 -> 1" or "constant 4"."""
        if self.kind == "constant" or self.start == self.end:
            return f"constant {self.start:g}"
        return f"{self.kind} {self.start:g} -> {self.end:g}"


# The scheduled DistillConfig fields: name -> (start field, schedule-kind field, end field).
SCHEDULED = {
    "temperature": ("temperature", "temperature_schedule", "temperature_end"),
    "alpha": ("alpha", "alpha_schedule", "alpha_end"),
    "hidden_weight": ("hidden_weight", "hidden_weight_schedule", "hidden_weight_end"),
}


def distill_schedules(cfg: DistillConfig) -> dict[str, Schedule]:
    """The three schedules a `DistillConfig` describes, validated.

    A non-constant schedule needs its end value (`temperature_end`, `alpha_end`, `hidden_weight_end`); a
    constant one ignores it. Temperatures stay > 0, alpha in [0, 1], the hidden weight >= 0.

    Example:
        >>> cfg = DistillConfig(temperature=8.0, temperature_schedule="cosine", temperature_end=1.0)
        >>> distill_schedules(cfg)["temperature"].describe()
        'cosine 8 -> 1'
    """
    out = {}
    for name, (start_key, kind_key, end_key) in SCHEDULED.items():
        kind, start, end = getattr(cfg, kind_key), getattr(cfg, start_key), getattr(cfg, end_key)
        if kind not in SCHEDULE_KINDS:
            raise ConfigError(f"unknown distill.{kind_key} {kind!r}", hint=f"use one of {', '.join(SCHEDULE_KINDS)}")
        if kind != "constant" and end is None:
            raise ConfigError(
                f"distill.{kind_key} is {kind!r} but distill.{end_key} is not set",
                hint=f"give the value at the last step, e.g. --kd.{end_key.replace('_', '-')} 1.0",
            )
        end = start if kind == "constant" or end is None else end
        for key, value in ((start_key, start), (end_key, end)):
            _check_range(name, key, value)
        out[name] = Schedule(kind, float(start), float(end))
    return out


def _check_range(name: str, key: str, value: float) -> None:
    if name == "temperature" and value <= 0:
        raise ConfigError(f"distill.{key} must be > 0, got {value}", hint="try 1.0 to 8.0")
    if name == "alpha" and not 0.0 <= value <= 1.0:
        raise ConfigError(f"distill.{key} must be in [0, 1], got {value}")
    if name == "hidden_weight" and value < 0:
        raise ConfigError(f"distill.{key} must be >= 0, got {value}")


# The loss terms each schedule acts on: T and alpha need "kd" (alpha also "ce"), hidden_weight "hidden".
_TERMS = {"temperature": {"kd"}, "alpha": {"kd", "ce"}, "hidden_weight": {"hidden"}}


def applicable_schedules(schedules: dict[str, Schedule], terms) -> dict[str, Schedule]:
    """The schedules a loss with these term names uses (e.g. none for "hard", T and alpha for "soft").

    `terms` are term names, or a loss's {name: term}: then T applies only to a "kd" term with a temperature
    (not to the logit MSE).

    Example:
        >>> sorted(applicable_schedules(distill_schedules(DistillConfig()), ["kd", "ce"]))
        ['alpha', 'temperature']
    """
    out = {name: s for name, s in schedules.items() if _TERMS.get(name, {name}) <= set(terms)}
    kd = terms.get("kd") if isinstance(terms, dict) else None
    if "temperature" in out and kd is not None and "temperature" not in getattr(kd, "params", {"temperature": 0}):
        del out["temperature"]  # a KD term without a temperature (the logit MSE)
    return out


def describe_schedules(schedules: dict[str, Schedule]) -> dict[str, Any]:
    """{"temperature": "linear 8 -> 1", ...}: the resolved schedules as saved with a run."""
    return {name: schedule.describe() for name, schedule in schedules.items()}
