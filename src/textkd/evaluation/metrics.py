"""Classification metrics for reports: accuracy, F1, per-class scores, confusions and calibration.

Every fraction is in [0, 1] and every value is a plain python type, so the dicts go straight into JSON.
Inputs may be lists, numpy arrays or CPU/GPU tensors. scikit-learn is imported on the first call, not with
textkd (it adds about 0.4 s to every command's start).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_array(values: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        values = values.detach().float().cpu().numpy() if values.is_floating_point() else values.cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-d of equal length")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty prediction set")


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    probs: Any = None,
    label_names: list[str] | None = None,
    out_of_scope_label: str | None = None,
) -> dict[str, Any]:
    """Scores of one prediction set.

    Keys: `num_examples`; `accuracy`; `macro_f1` and `weighted_f1` (scikit-learn's defaults: the macro mean
    runs over labels that occur in y_true or y_pred, so a small subset is not penalised for classes it never
    contains); `per_class` {name: {precision, recall, f1, support}} for all C labels (0 where undefined);
    `confusion_matrix` C x C, rows true, columns predicted; `ece` when `probs` is given; and, when
    `out_of_scope_label` names a class (clinc150's "oos"), `in_scope_accuracy` (accuracy on rows whose gold
    label is not out of scope) and `oos_recall` (recall of the out-of-scope class), None without such rows.

    Args:
        y_true: (N,) gold label ids.
        y_pred: (N,) predicted label ids.
        probs: optional (N, C) predicted class probabilities.
        label_names: the C label names; default "0".."C-1" with C from the largest id seen.
        out_of_scope_label: name of the out-of-scope class, if the dataset has one.

    Example:
        >>> m = classification_metrics([0, 1, 2, 2], [0, 2, 2, 2], label_names=["a", "b", "oos"],
        ...                            out_of_scope_label="oos")
        >>> m["accuracy"], m["in_scope_accuracy"], m["oos_recall"]
        (0.75, 0.5, 1.0)
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true, y_pred = _as_array(y_true, np.int64), _as_array(y_pred, np.int64)
    _check_pair(y_true, y_pred)
    prob_array = None if probs is None else _as_array(probs, np.float64)
    names = _label_names(label_names, y_true, y_pred, prob_array)
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "num_examples": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if prob_array is not None:
        out["ece"] = expected_calibration_error(prob_array, y_true)
    if out_of_scope_label is not None:
        out.update(out_of_scope_metrics(y_true, y_pred, names, out_of_scope_label))
    return out


def _label_names(
    label_names: list[str] | None, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None
) -> list[str]:
    largest = int(max(y_true.max(), y_pred.max()))
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("label ids must be >= 0")
    if label_names is None:
        width = probs.shape[1] if probs is not None else 0
        return [str(i) for i in range(max(largest + 1, width))]
    if largest >= len(label_names):
        raise ValueError(f"label id {largest} is out of range for {len(label_names)} label names")
    return list(label_names)


def out_of_scope_metrics(
    y_true: Any, y_pred: Any, label_names: list[str], out_of_scope_label: str
) -> dict[str, float | None]:
    """In-scope accuracy and out-of-scope recall, the two numbers CLINC150 papers report.

    Larson et al. (2019), "An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction".

    Returns:
        {"in_scope_accuracy": accuracy on rows whose gold label is in scope,
         "oos_recall": share of out-of-scope rows predicted as out of scope}; a value is None when the
        set has no row of that kind.

    Example:
        >>> out_of_scope_metrics([0, 2, 2], [1, 2, 0], ["a", "b", "oos"], "oos")
        {'in_scope_accuracy': 0.0, 'oos_recall': 0.5}
    """
    if out_of_scope_label not in label_names:
        raise ValueError(f"out-of-scope label {out_of_scope_label!r} is not one of the label names")
    y_true, y_pred = _as_array(y_true, np.int64), _as_array(y_pred, np.int64)
    oos = label_names.index(out_of_scope_label)
    in_scope = y_true != oos
    return {
        "in_scope_accuracy": float(np.mean(y_pred[in_scope] == y_true[in_scope])) if in_scope.any() else None,
        "oos_recall": float(np.mean(y_pred[~in_scope] == oos)) if (~in_scope).any() else None,
    }


def expected_calibration_error(probs: Any, y_true: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence (Guo et al. 2017, "On Calibration of Modern
    Neural Networks").

    Rows are grouped into `n_bins` equal-width bins (lo, hi] of their maximum probability; ECE is
    sum_b |bin_b| / N * |accuracy(bin_b) - mean confidence(bin_b)|. The prediction is argmax(probs).

    Args:
        probs: (N, C) class probabilities.
        y_true: (N,) gold label ids.
        n_bins: number of confidence bins.

    Example:
        >>> probs = [[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]]  # both right; confidences fall in different bins
        >>> round(expected_calibration_error(probs, [0, 0], n_bins=2), 6)  # 0.5*|1-0.9| + 0.5*|1-0.4|
        0.35
    """
    probs, y_true = _as_array(probs, np.float64), _as_array(y_true, np.int64)
    if probs.ndim != 2 or len(probs) != len(y_true) or len(probs) == 0:
        raise ValueError(f"probs {probs.shape} must be (N, C) with N = len(y_true) = {len(y_true)} > 0")
    confidence = probs.max(axis=1)  # (N,)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)  # (N,)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" on the inner edges puts a confidence equal to an edge into the bin it closes: (lo, hi].
    bins = np.searchsorted(edges[1:-1], confidence, side="left")  # (N,) in [0, n_bins)
    ece = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def agreement(pred_a: Any, pred_b: Any) -> float:
    """Share of rows where two models predict the same label (e.g. student vs teacher fidelity).

    Example:
        >>> agreement([0, 1, 2, 3], [0, 1, 0, 3])
        0.75
    """
    a, b = _as_array(pred_a, np.int64), _as_array(pred_b, np.int64)
    _check_pair(a, b)
    return float(np.mean(a == b))


def top_confusions(confusion: Any, label_names: list[str], k: int = 10) -> list[tuple[str, str, int]]:
    """The `k` most frequent off-diagonal cells of a confusion matrix (rows true, columns predicted).

    Ties are broken by (true, predicted) label id, so the list is stable; empty cells are left out.

    Returns:
        [(true label, predicted label, count), ...], most frequent first.

    Example:
        >>> top_confusions([[5, 2, 0], [1, 4, 0], [3, 0, 6]], ["a", "b", "c"], k=2)
        [('c', 'a', 3), ('a', 'b', 2)]
    """
    matrix = _as_array(confusion, np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(label_names):
        raise ValueError(f"confusion {matrix.shape} must be C x C with C = {len(label_names)} labels")
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    cells = sorted(zip(rows.tolist(), cols.tolist(), strict=True), key=lambda rc: (-off[rc], rc))
    return [(label_names[r], label_names[c], int(off[r, c])) for r, c in cells[:k]]
