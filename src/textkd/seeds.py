"""One distillation grid repeated over several seeds, summarised: KD's gain next to its seed-to-seed spread.

A single seed can make KD look better or worse than it is: on banking77 the same BiLSTM's `soft` - `none` gain
ranged from +1.66 to +2.92 points over seven seeds at 40 epochs (benchmarks/README.md). `distill_seeds` trains the
grid once per seed (every method of a seed shares its initial weights, data order and schedule, as in `distill`) and
writes `seeds_<preset>.json`: per method the mean, standard deviation and range of test accuracy and macro-F1, and
per KD method its gain over `none` seed by seed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textkd.config import Config
from textkd.data.dataset import DatasetSplits
from textkd.errors import ConfigError
from textkd.utils import atomic_write_json

METRICS = ("accuracy", "macro_f1")


@dataclass
class SeedsResult:
    """The grids of every seed (`results[seed]`, one `TrainResult` per method) and their summary."""

    results: dict[int, list[Any]]
    summary: dict[str, Any]
    path: Path  # seeds_<preset>.json


def parse_seeds(text: str | list[int]) -> list[int]:
    """Seeds from "42,43,44" (or a list), in order; at least one, none twice.

    Example:
        >>> parse_seeds("42, 43,44")
        [42, 43, 44]
    """
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if isinstance(text, str) else [int(s) for s in text]
    except ValueError:
        raise ConfigError(
            f"seeds must be whole numbers separated by commas, got {text!r}", hint="e.g. 42,43,44"
        ) from None
    if not seeds:
        raise ConfigError("no seeds given", hint="e.g. 42,43,44")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"a seed is listed twice in {seeds}", hint="each seed trains the grid once")
    return seeds


def distill_seeds(
    cfg: Config,
    teacher_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    seeds: str | list[int],
    methods: str | list[str] | None = None,
    resume: bool = False,
    splits: DatasetSplits | None = None,
) -> SeedsResult:
    """`textkd.distill` once per seed (`student.train.seed`), each into `<output_dir>/seed<N>/`, then the summary.

    The teacher's cached outputs are computed once and shared; augmented copies are drawn per seed.

    Example:
        >>> out = distill_seeds(cfg, "runs/bbc/teacher", seeds=[1, 2, 3], methods=["none", "soft"])  # doctest: +SKIP
        >>> out.summary["gain_over_none"]["soft"]["accuracy"]["mean"]  # doctest: +SKIP
        0.021
    """
    from textkd.api import distill, grid_dir, load_data

    seeds = parse_seeds(seeds)
    splits = splits or load_data(cfg.data)
    grid = grid_dir(cfg, splits, output_dir)
    results = {}
    for seed in seeds:
        seeded = replace(cfg, student=replace(cfg.student, train=replace(cfg.student.train, seed=seed)))
        results[seed] = distill(
            seeded, teacher_dir, grid / f"seed{seed}", methods=methods, resume=resume, splits=splits
        )
    summary = summarise_seeds(
        {seed: {r.method: r.test_metrics for r in rows} for seed, rows in results.items()}, cfg.student.preset
    )
    summary["dirs"] = {seed: [str(r.output_dir) for r in rows] for seed, rows in results.items()}
    path = grid / f"seeds_{cfg.student.preset}.json"
    atomic_write_json(path, summary)
    return SeedsResult(results, summary, path)


def summarise_seeds(metrics: dict[int, dict[str, dict[str, float]]], student: str) -> dict[str, Any]:
    """Per method, the spread of each metric over seeds; per KD method, its paired gain over `none` (same seed).

    `metrics[seed][method]` holds that run's test metrics. The standard deviation is the sample one (n - 1),
    None for a single seed.

    Example:
        >>> s = summarise_seeds({1: {"none": {"accuracy": 0.80, "macro_f1": 0.7}, "soft": {"accuracy": 0.84,
        ...     "macro_f1": 0.8}}, 2: {"none": {"accuracy": 0.82, "macro_f1": 0.7}, "soft": {"accuracy": 0.83,
        ...     "macro_f1": 0.8}}}, "bilstm")
        >>> s["methods"]["soft"]["accuracy"]["mean"], s["gain_over_none"]["soft"]["accuracy"]["per_seed"]
        (0.835, {1: 0.04, 2: 0.01})
    """
    seeds = list(metrics)
    methods = list(dict.fromkeys(m for seed in seeds for m in metrics[seed]))
    summary: dict[str, Any] = {"student": student, "seeds": seeds, "methods": {}, "gain_over_none": {}}
    for method in methods:
        summary["methods"][method] = {
            key: _spread({seed: metrics[seed][method][key] for seed in seeds}) for key in METRICS
        }
    if "none" in methods:
        for method in methods:
            if method != "none":
                summary["gain_over_none"][method] = {
                    key: _spread({s: metrics[s][method][key] - metrics[s]["none"][key] for s in seeds}, gain=True)
                    for key in METRICS
                }
    return summary


def _spread(values: dict[int, float], gain: bool = False) -> dict[str, Any]:
    numbers = list(values.values())
    out = {
        "mean": round(statistics.fmean(numbers), 6),
        "std": round(statistics.stdev(numbers), 6) if len(numbers) > 1 else None,
        "min": round(min(numbers), 6),
        "max": round(max(numbers), 6),
        "per_seed": {seed: round(v, 6) for seed, v in values.items()},
    }
    if gain:
        out["seeds_above_zero"] = sum(v > 0 for v in numbers)
    return out
