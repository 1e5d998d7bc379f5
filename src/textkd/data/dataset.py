"""In-memory labelled text splits: the data contract every other module reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class TextDataset:
    """One split: texts, integer labels (indices into `label_names`) and where the rows came from.

    Attributes:
        texts: the input texts, already stripped of surrounding whitespace.
        labels: (N,) int64 label ids; ids index `label_names`.
        label_names: the label vocabulary shared by every split of a dataset.
        source: a short description (file path or preset/split) for messages and reports.
    """

    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: np.ndarray | list[int], source: str | None = None) -> TextDataset:
        idx = np.asarray(indices, dtype=np.int64)
        return TextDataset(
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            label_names=self.label_names,
            source=source if source is not None else self.source,
        )

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}


@dataclass
class DatasetSplits:
    """train / validation / test of one dataset with a shared label vocabulary.

    Attributes:
        name: preset name or "files".
        notes: human-readable facts a report must state (e.g. "validation carved from train: 10%, seed 42",
            "partial train split: 33,590 of 180,000 rows").
        partial: True when the train split is knowingly incomplete.
        language: "en" | "zh" | ... (guides tokenizer defaults).
        out_of_scope_label: name of an out-of-scope class (clinc150: "oos"), else None.
    """

    name: str
    train: TextDataset
    validation: TextDataset
    test: TextDataset
    notes: list[str] = field(default_factory=list)
    partial: bool = False
    language: str = "en"
    out_of_scope_label: str | None = None

    @property
    def label_names(self) -> list[str]:
        return self.train.label_names

    @property
    def num_labels(self) -> int:
        return self.train.num_labels

    def split(self, name: str) -> TextDataset:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)


def reorder_labels(splits: DatasetSplits, names: list[str]) -> DatasetSplits:
    """The same rows with label ids that follow `names`, a reordering of the splits' label names.

    A teacher from elsewhere (a hub model) lists the dataset's labels in its own order; distilling on the
    reordered splits makes its logits, the gold ids and the student's labels line up.

    Example:
        >>> ds = TextDataset(["a", "b"], [0, 1], ["neg", "pos"])
        >>> reorder_labels(DatasetSplits("d", ds, ds, ds), ["pos", "neg"]).train.labels.tolist()
        [1, 0]
    """
    if sorted(names) != sorted(splits.label_names):
        raise ValueError(f"{names} is not a reordering of {splits.label_names}")
    index = {name: i for i, name in enumerate(names)}
    new_ids = np.array([index[name] for name in splits.label_names], dtype=np.int64)  # old id -> new id

    def one(dataset: TextDataset) -> TextDataset:
        return replace(dataset, labels=new_ids[dataset.labels], label_names=list(names))

    return replace(splits, train=one(splits.train), validation=one(splits.validation), test=one(splits.test))
