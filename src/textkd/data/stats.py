"""What a dataset looks like before training on it: sizes, class balance, text lengths, duplicates, leaks.

`dataset_stats` returns plain JSON-ready dicts (for reports); `render_stats` and `render_presets` turn them
into rich tables for `textkd data show` and `textkd data list`.

Example:
    >>> from textkd.config import DataConfig
    >>> from textkd.data.loading import load_splits
    >>> stats = dataset_stats(load_splits(DataConfig(name="bbc-news")))
    >>> stats["splits"]["test"]["rows"], stats["length_unit"]
    (223, 'words')
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from textkd.data.dataset import DatasetSplits, TextDataset
from textkd.data.presets import PresetInfo

SPLITS = ("train", "validation", "test")
PERCENTILES = (50, 90, 95, 99)


def dataset_stats(splits: DatasetSplits, tokenizer: Any = None, max_len: int | None = None) -> dict[str, Any]:
    """Describe `splits`: sizes, class balance, length percentiles, duplicates and cross-split overlap.

    Args:
        splits: the loaded dataset.
        tokenizer: a Hugging Face tokenizer (or a `tokenizers.Tokenizer`); lengths then count its tokens,
            special tokens included. Without one, lengths count words (characters for Chinese).
        max_len: with a tokenizer, also report the share of texts longer than this (truncated).

    Returns:
        {"name", "language", "num_labels", "partial", "out_of_scope_label", "notes", "length_unit",
        "max_len", "splits": {split: {...}}, "overlap": {"train/test": {...}, ...}}.

    Example:
        >>> stats = dataset_stats(splits, tokenizer, max_len=128)  # doctest: +SKIP
        >>> stats["splits"]["train"]["length"]["truncated_share"]  # doctest: +SKIP
        0.004
    """
    unit = "tokens" if tokenizer is not None else ("characters" if splits.language == "zh" else "words")
    per_split = {}
    for name in SPLITS:
        data = splits.split(name)
        lengths = text_lengths(data.texts, tokenizer, splits.language)
        per_split[name] = {
            "rows": len(data),
            **class_balance(data),
            "length": length_summary(lengths, max_len if tokenizer is not None else None),
            "duplicates": duplicates(data.texts),
        }
    return {
        "name": splits.name,
        "language": splits.language,
        "num_labels": splits.num_labels,
        "partial": splits.partial,
        "out_of_scope_label": splits.out_of_scope_label,
        "notes": list(splits.notes),
        "length_unit": unit,
        "max_len": max_len,
        "splits": per_split,
        "overlap": {
            f"{a}/{b}": overlap(splits.split(a), splits.split(b))
            for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
        },
    }


def class_balance(data: TextDataset) -> dict[str, Any]:
    """Rows per class: min / median / max over the classes present, their ratio, and absent classes."""
    counts = np.bincount(data.labels, minlength=data.num_labels)  # (C,)
    present = counts[counts > 0]
    if present.size == 0:
        return {"labels_present": 0, "labels_missing": list(data.label_names), "class_counts": {}}
    return {
        "labels_present": int(present.size),
        "labels_missing": [name for name, n in zip(data.label_names, counts, strict=True) if n == 0],
        "class_min": int(present.min()),
        "class_median": float(np.median(present)),
        "class_max": int(present.max()),
        "imbalance_ratio": round(float(present.max() / present.min()), 2),
        "class_counts": {name: int(n) for name, n in zip(data.label_names, counts, strict=True)},
    }


def text_lengths(texts: list[str], tokenizer: Any = None, language: str = "en") -> np.ndarray:
    """(N,) length of each text: tokenizer tokens, else words, else characters for Chinese."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    if tokenizer is None:
        counts = [len(t) for t in texts] if language == "zh" else [len(t.split()) for t in texts]
    elif hasattr(tokenizer, "encode_batch"):  # a bare `tokenizers.Tokenizer`
        counts = [len(encoding.ids) for encoding in tokenizer.encode_batch(texts)]
    else:
        try:  # verbose=False: the whole point is to see texts longer than the model's maximum
            ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        except TypeError:
            ids = tokenizer(texts)["input_ids"]
        counts = [len(row) for row in ids]
    return np.asarray(counts, dtype=np.int64)


def length_summary(lengths: np.ndarray, max_len: int | None = None) -> dict[str, Any]:
    """p50/p90/p95/p99/max/mean of `lengths` and, with `max_len`, the share longer than it."""
    if lengths.size == 0:
        return {}
    out: dict[str, Any] = {f"p{q}": int(np.percentile(lengths, q, method="higher")) for q in PERCENTILES}
    out["max"] = int(lengths.max())
    out["mean"] = round(float(lengths.mean()), 1)
    out["truncated_share"] = round(float((lengths > max_len).mean()), 4) if max_len is not None else None
    return out


def normalize_text(text: str) -> str:
    """Lower case with runs of whitespace collapsed: the key for near-duplicate counts."""
    return " ".join(text.lower().split())


def duplicates(texts: list[str]) -> dict[str, int]:
    """Rows that repeat an earlier row of the same split, exactly and after normalisation."""
    return {
        "exact": len(texts) - len(set(texts)),
        "normalized": len(texts) - len({normalize_text(t) for t in texts}),
    }


def overlap(first: TextDataset, second: TextDataset) -> dict[str, int]:
    """Rows of `second` whose text occurs in `first` (exactly / normalised), and how many differ in label."""
    labels_of: dict[str, set[int]] = defaultdict(set)
    for text, label in zip(first.texts, first.labels.tolist(), strict=True):
        labels_of[text].add(label)
    normalized = {normalize_text(t) for t in first.texts}
    exact = [(t, y) for t, y in zip(second.texts, second.labels.tolist(), strict=True) if t in labels_of]
    return {
        "exact": len(exact),
        "normalized": sum(normalize_text(t) in normalized for t in second.texts),
        "label_conflicts": sum(y not in labels_of[t] for t, y in exact),
    }


# ------------------------------------------------------------------------------------------- rendering


def render_stats(stats: dict[str, Any]) -> Group:
    """Rich tables of `dataset_stats` output: overview, per-split figures, overlap, notes.

    Example:
        >>> from rich.console import Console
        >>> Console().print(render_stats(stats))  # doctest: +SKIP
    """
    parts: list[Any] = [_overview_table(stats), _split_table(stats), _overlap_table(stats)]
    for split, figures in stats["splits"].items():
        missing = figures.get("labels_missing") or []
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            parts.append(Text(f"{split}: {len(missing)} labels absent: {shown}", style="yellow"))
    for note in stats["notes"]:
        parts.append(Text(f"note: {note}", style="yellow" if "partial" in note else "dim"))
    return Group(*parts)


def _overview_table(stats: dict[str, Any]) -> Table:
    table = Table(title=f"dataset {stats['name']}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("labels", f"{stats['num_labels']:,}")
    table.add_row("language", stats["language"])
    if stats["out_of_scope_label"]:
        table.add_row("out-of-scope label", stats["out_of_scope_label"])
    table.add_row("partial", "yes: train split incomplete" if stats["partial"] else "no")
    return table


def _split_table(stats: dict[str, Any]) -> Table:
    unit = stats["length_unit"]
    table = Table(title="splits")
    for column in ("split", "rows", "labels", "per class min/med/max", "imbalance"):
        table.add_column(column, justify="left" if column == "split" else "right")
    table.add_column(f"length ({unit}) p50/p90/p95/p99/max", justify="right")
    if stats["max_len"] is not None and unit == "tokens":
        table.add_column(f"> {stats['max_len']}", justify="right")
    table.add_column("dup exact/norm", justify="right")
    for split, s in stats["splits"].items():
        length = s["length"]
        row = [
            split,
            f"{s['rows']:,}",
            f"{s['labels_present']:,}",
            f"{s.get('class_min', 0)}/{s.get('class_median', 0):g}/{s.get('class_max', 0)}",
            f"{s.get('imbalance_ratio', 0):.2f}",
            "/".join(str(length.get(k, "-")) for k in ("p50", "p90", "p95", "p99", "max")),
        ]
        if stats["max_len"] is not None and unit == "tokens":
            share = length.get("truncated_share")
            row.append(f"{share:.1%}" if share is not None else "-")
        row.append(f"{s['duplicates']['exact']}/{s['duplicates']['normalized']}")
        table.add_row(*row)
    return table


def _overlap_table(stats: dict[str, Any]) -> Table:
    table = Table(title="texts shared between splits (rows of the second split)")
    for column in ("splits", "exact", "normalised", "label conflicts"):
        table.add_column(column, justify="left" if column == "splits" else "right")
    for pair, figures in stats["overlap"].items():
        style = "yellow" if figures["exact"] or figures["normalized"] else None
        table.add_row(
            pair,
            str(figures["exact"]),
            str(figures["normalized"]),
            str(figures["label_conflicts"]),
            style=style,
        )
    return table


def render_presets(presets: list[PresetInfo]) -> Table:
    """A rich table of `list_presets()` for `textkd data list`.

    Example:
        >>> from textkd.data.presets import list_presets
        >>> render_presets(list_presets()).row_count
        6
    """
    table = Table(title="dataset presets")
    for column in ("name", "description", "lang", "labels", "variants", "where"):
        table.add_column(column, justify="right" if column == "labels" else "left")
    for info in presets:
        where = info.location if info.location != "local" else f"local: {info.path}"
        if info.location == "cache":
            where = f"cache: {info.path}"
        style = "red" if info.location.startswith("missing") else None
        table.add_row(
            info.name,
            info.description,
            ",".join(info.languages),
            str(info.num_labels) if info.num_labels is not None else "?",
            ", ".join(info.variants) or "-",
            where,
            style=style,
        )
    return table
