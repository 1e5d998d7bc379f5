"""Metrics: agreement with scikit-learn and hand-computed calibration and out-of-scope scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from textkd.evaluation import (
    agreement,
    classification_metrics,
    expected_calibration_error,
    top_confusions,
)

Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 0])
Y_PRED = np.array([0, 1, 1, 1, 2, 2, 0, 3, 3, 1, 3, 0])
NAMES = ["alpha", "beta", "gamma", "delta", "never"]  # "never" occurs in neither array


def test_matches_scikit_learn() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, label_names=NAMES)
    assert m["num_examples"] == 12
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="weighted"))
    p, r, f, s = precision_recall_fscore_support(Y_TRUE, Y_PRED, labels=range(5), zero_division=0)
    for i, name in enumerate(NAMES):
        assert m["per_class"][name] == pytest.approx({"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    assert m["per_class"]["never"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion_matrix"] == confusion_matrix(Y_TRUE, Y_PRED, labels=range(5)).tolist()
    assert len(m["confusion_matrix"]) == 5 and all(len(row) == 5 for row in m["confusion_matrix"])
    assert "ece" not in m and "oos_recall" not in m


def test_accepts_tensors_and_default_names() -> None:
    m = classification_metrics(torch.tensor(Y_TRUE), torch.tensor(Y_PRED), probs=torch.full((12, 6), 1 / 6))
    assert list(m["per_class"]) == ["0", "1", "2", "3", "4", "5"]  # width from probs
    assert 0.0 <= m["ece"] <= 1.0


def test_ece_hand_example() -> None:
    probs = np.array(
        [
            [0.95, 0.05],  # bin (14/15, 1]: right
            [0.95, 0.05],  # same bin: wrong
            [0.55, 0.45],  # bin (8/15, 9/15]: right
            [0.30, 0.70],  # bin (10/15, 11/15]: right
        ]
    )
    y_true = np.array([0, 1, 0, 1])
    expected = 0.5 * abs(0.5 - 0.95) + 0.25 * abs(1 - 0.55) + 0.25 * abs(1 - 0.70)
    assert expected_calibration_error(probs, y_true) == pytest.approx(expected)
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)
    m = classification_metrics(y_true, probs.argmax(1), probs=probs)
    assert m["ece"] == pytest.approx(expected)


def test_ece_bin_edges_are_right_closed() -> None:
    # Confidence exactly 0.5 belongs to (0, 0.5] with two bins, not to (0.5, 1].
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert expected_calibration_error(probs, [1, 0], n_bins=2) == pytest.approx(0.5 * 0.5)


def test_clinc_in_scope_accuracy_and_oos_recall() -> None:
    names = ["balance", "transfer", "oos"]
    y_true = [0, 1, 1, 2, 2, 2, 2, 0]
    y_pred = [0, 1, 2, 2, 0, 2, 1, 0]
    m = classification_metrics(y_true, y_pred, label_names=names, out_of_scope_label="oos")
    assert m["in_scope_accuracy"] == pytest.approx(3 / 4)  # rows 0, 1, 2, 7: row 2 wrongly called oos
    assert m["oos_recall"] == pytest.approx(2 / 4)
    assert m["oos_recall"] == pytest.approx(m["per_class"]["oos"]["recall"])
    assert m["accuracy"] == pytest.approx(5 / 8)


def test_out_of_scope_without_rows_is_none() -> None:
    m = classification_metrics([0, 1], [0, 1], label_names=["a", "b", "oos"], out_of_scope_label="oos")
    assert m["oos_recall"] is None and m["in_scope_accuracy"] == 1.0


def test_agreement_and_top_confusions() -> None:
    assert agreement(Y_PRED, Y_PRED) == 1.0
    assert agreement([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    matrix = classification_metrics(Y_TRUE, Y_PRED, label_names=NAMES)["confusion_matrix"]
    top = top_confusions(matrix, NAMES, k=3)
    assert top[0] == ("alpha", "beta", 1)  # every confusion here occurs once: ties go by label id
    assert len(top) == 3 and all(t != p for t, p, _ in top)
    assert top_confusions([[3, 0], [0, 4]], ["a", "b"]) == []
    assert top_confusions([[0, 1], [5, 0]], ["a", "b"]) == [("b", "a", 5), ("a", "b", 1)]


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="equal length"):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="out of range"):
        classification_metrics([0, 3], [0, 1], label_names=["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        agreement([], [])
