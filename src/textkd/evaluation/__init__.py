"""Evaluation: classification metrics (and, elsewhere in this package, latency benchmarks and reports)."""

from __future__ import annotations

from textkd.evaluation.metrics import (
    agreement,
    classification_metrics,
    expected_calibration_error,
    out_of_scope_metrics,
    top_confusions,
)

__all__ = [
    "agreement",
    "classification_metrics",
    "expected_calibration_error",
    "out_of_scope_metrics",
    "top_confusions",
]
