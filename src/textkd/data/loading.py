"""One entry point, `load_splits`: a preset or local files -> validated `DatasetSplits`.

Validation happens here, once, for every source: empty texts are dropped (with a warning) or rejected,
labels are mapped to one vocabulary defined by the training split, labels that only evaluation splits
have are rejected, and a missing validation split is carved from train (stratified, fixed seed). The
test split is only read and checked; nothing here selects on it.

Example:
    >>> from textkd.config import DataConfig
    >>> splits = load_splits(DataConfig(name="bbc-news"))
    >>> len(splits.train), len(splits.validation), len(splits.test), splits.num_labels
    (1779, 223, 223, 5)
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textkd.config import DataConfig
from textkd.data.dataset import DatasetSplits, TextDataset
from textkd.data.readers import RawSplit, is_int_label, read_label_file, read_table
from textkd.errors import ConfigError, DataError


class DataWarning(UserWarning):
    """Something in the data was changed on the way in (e.g. empty texts dropped)."""


@dataclass
class RawDataset:
    """What a source yields before validation: raw splits plus facts about the dataset.

    Attributes:
        test: None asks `build_splits` to carve a test split (`test_fraction` of all rows).
        label_names: the label list of a label file (ids index it; its order is kept), else None.
        validation_fraction, split_seed: fixed carving for presets without an official split; None uses
            the config's values.
    """

    name: str
    train: RawSplit
    validation: RawSplit | None = None
    test: RawSplit | None = None
    label_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    partial: bool = False
    language: str = "en"
    out_of_scope_label: str | None = None
    test_fraction: float = 0.1
    validation_fraction: float | None = None
    split_seed: int | None = None


def load_splits(cfg: DataConfig) -> DatasetSplits:
    """Read, validate and split the dataset that `cfg` names.

    Args:
        cfg: `cfg.name` is a preset (see `textkd.data.presets.PRESETS`) or "files" with `cfg.train`,
            `cfg.test` and optionally `cfg.validation`, `cfg.label_file`.

    Returns:
        train / validation / test sharing the training split's label vocabulary, with notes on what
        was carved, dropped or is incomplete.

    Example:
        >>> cfg = DataConfig(name="files", train="train.csv", test="test.csv")
        >>> load_splits(cfg).notes  # doctest: +SKIP
        ['validation carved from train: 10 rows (10%, stratified, seed 42)']
    """
    _check_config(cfg)
    if cfg.name == "files":
        raw = read_files(cfg)
    else:
        from textkd.data.presets import PRESETS, read_preset

        if cfg.name not in PRESETS:
            names = [*PRESETS, "files"]
            close = difflib.get_close_matches(cfg.name, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(names)}"
            raise ConfigError(f"unknown dataset {cfg.name!r}", hint=hint)
        raw = read_preset(cfg)
    return build_splits(raw, cfg)


def _check_config(cfg: DataConfig) -> None:
    given = [key for key in ("train", "validation", "test", "label_file") if getattr(cfg, key)]
    if given and cfg.name != "files":  # they would be ignored, and the preset trained on instead
        raise ConfigError(
            f"data.{given[0]} is only read with data.name 'files', but data.name is {cfg.name!r}",
            hint="add --data files to train on your files, or drop the file paths",
        )
    if cfg.empty_texts not in ("drop", "error"):
        raise ConfigError(f"data.empty_texts must be 'drop' or 'error', got {cfg.empty_texts!r}")
    if not 0.0 < cfg.validation_fraction < 1.0:
        raise ConfigError(f"data.validation_fraction must be between 0 and 1, got {cfg.validation_fraction}")


def read_files(cfg: DataConfig) -> RawDataset:
    """Read `cfg.train` / `cfg.validation` / `cfg.test` (name="files") without validating them yet."""
    for option in ("train", "test"):
        if not getattr(cfg, option):
            raise ConfigError(f"data.{option} is required when data.name is 'files'", hint=f"pass --data.{option} PATH")
    label_names = read_label_file(cfg.label_file) if cfg.label_file else None

    def read(path: str) -> RawSplit:
        return read_table(
            path,
            fmt=cfg.format,
            text_column=cfg.text_column,
            label_column=cfg.label_column,
            has_header=cfg.has_header,
            label_names=label_names,
        )

    return RawDataset(
        name="files",
        train=read(cfg.train),
        validation=read(cfg.validation) if cfg.validation else None,
        test=read(cfg.test),
        label_names=label_names,
    )


def build_splits(raw: RawDataset, cfg: DataConfig) -> DatasetSplits:
    """Validate `raw` and turn it into `DatasetSplits` (carving validation/test when absent).

    Example:
        >>> build_splits(RawDataset("toy", train=raw_train, test=raw_test), DataConfig())  # doctest: +SKIP
    """
    notes = list(raw.notes)
    splits = {"train": raw.train, "validation": raw.validation, "test": raw.test}
    splits = {k: _clean_texts(v, cfg.empty_texts, notes) for k, v in splits.items() if v is not None}
    names = {k: resolve_labels(v, raw.label_names) for k, v in splits.items()}
    vocabulary = raw.label_names or sort_labels(set(names["train"]))
    _check_train_labels(splits["train"], names["train"])
    for split in ("validation", "test"):
        if split in splits:
            _check_known_labels(splits[split], names[split], splits["train"], set(names["train"]))
    data = {k: _to_dataset(v, names[k], vocabulary) for k, v in splits.items()}
    seed = raw.split_seed if raw.split_seed is not None else cfg.split_seed
    if "test" not in data:
        data["train"], data["test"] = carve(data["train"], raw.test_fraction, seed, "test", notes)
    if "validation" not in data:
        fraction = raw.validation_fraction or cfg.validation_fraction
        data["train"], data["validation"] = carve(data["train"], fraction, seed, "validation", notes)
    return DatasetSplits(
        name=raw.name,
        train=data["train"],
        validation=data["validation"],
        test=data["test"],
        notes=notes,
        partial=raw.partial,
        language=raw.language,
        out_of_scope_label=raw.out_of_scope_label,
    )


# ------------------------------------------------------------------------------------------ validation


def _clean_texts(split: RawSplit, policy: str, notes: list[str]) -> RawSplit:
    """Strip texts; drop empty or whitespace-only ones (policy "drop") or reject them ("error")."""
    split.texts = [text.strip() for text in split.texts]
    empty = [i for i, text in enumerate(split.texts) if not text]
    if not empty:
        return split
    count = f"{len(empty):,} empty or whitespace-only text{'s' if len(empty) > 1 else ''}"
    if policy == "error":
        hint = "fix them or set data.empty_texts=drop"
        raise split.error(empty[0], f"empty text ({count} in this file)", hint=hint)
    message = f"dropped {count} from {split.path}"
    warnings.warn(message, DataWarning, stacklevel=2)
    notes.append(message)
    empty_set = set(empty)
    return split.subset([i for i in range(len(split)) if i not in empty_set])


def resolve_labels(split: RawSplit, label_names: list[str] | None) -> list[str]:
    """The label name of every row: ids index `label_names`; names must be in it when it is given.

    Example:
        >>> resolve_labels(raw, ["finance", "realty"])  # doctest: +SKIP
        ['realty', 'finance', ...]
    """
    known = set(label_names) if label_names is not None else None
    out: list[str] = []
    for i, label in enumerate(split.labels):
        if label == "":
            raise split.error(i, "empty label", hint="every row needs a label")
        if known is None:
            out.append(str(label))
        elif is_int_label(label):
            index = int(label)
            if not 0 <= index < len(label_names):
                raise split.error(
                    i,
                    f"label id {index} is out of range: the label file has {len(label_names)} names "
                    f"(ids 0-{len(label_names) - 1})",
                    hint="fix the id or the label file",
                )
            out.append(label_names[index])
        elif label in known:
            out.append(label)
        else:
            raise split.error(i, f"label {label!r} is not in the label file", hint="add it to the label file")
    return out


def sort_labels(names: set[str]) -> list[str]:
    """Label vocabulary without a label file: sorted, numerically when every name is an integer."""
    if all(is_int_label(name) for name in names):
        return sorted(names, key=int)
    return sorted(names)


def _check_train_labels(split: RawSplit, names: list[str]) -> None:
    distinct = set(names)
    if len(distinct) < 2:
        only = f" ({next(iter(distinct))!r})" if distinct else ""
        raise DataError(
            f"the training split has a single class{only}; a classifier needs at least two",
            path=split.path,
            hint="check data.label_column",
        )


def _check_known_labels(split: RawSplit, names: list[str], train: RawSplit, train_names: set[str]) -> None:
    unknown = [i for i, name in enumerate(names) if name not in train_names]
    if unknown:
        first = names[unknown[0]]
        raise split.error(
            unknown[0],
            f"label {first!r} does not occur in the training split {train.path} "
            f"({len(unknown):,} row{'s' if len(unknown) > 1 else ''} with unseen labels)",
            hint="fix the label or add training rows for it",
        )


def read_labelled_file(
    path: str | Path,
    label_names: list[str],
    *,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    has_header: bool | None = None,
    empty_texts: str = "drop",
) -> TextDataset:
    """A labelled file outside any preset (CSV, TSV, JSON Lines, JSON) as a split over `label_names`.

    For evaluating a trained model on new data: `label_names` is the model's label list, and each row's label
    is one of those names or an integer id into it. Empty texts are dropped with a warning (or rejected with
    `empty_texts="error"`); a label the model does not know is an error naming the file and line.

    Example:
        >>> data = read_labelled_file("march.csv", ["card_arrival", "lost_or_stolen_card"])  # doctest: +SKIP
    """
    split = read_table(
        path,
        fmt=fmt,
        text_column=text_column,
        label_column=label_column,
        has_header=has_header,
        label_names=label_names,
    )
    split = _clean_texts(split, empty_texts, [])
    if not len(split):
        raise DataError("no texts left after dropping empty ones", path=split.path)
    index = {name: i for i, name in enumerate(label_names)}
    names: list[str] = []
    for i, label in enumerate(split.labels):
        value = str(label).strip()
        if value in index:
            names.append(value)
        elif is_int_label(value) and 0 <= int(value) < len(label_names):
            names.append(label_names[int(value)])
        else:
            close = difflib.get_close_matches(value, label_names, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"use one of its label names ({', '.join(label_names[:3])}, ...) or ids 0-{len(label_names) - 1}"
            )
            raise split.error(i, f"label {value!r} is not one of the model's {len(label_names)} labels", hint=hint)
    return _to_dataset(split, names, list(label_names))


def _to_dataset(split: RawSplit, names: list[str], vocabulary: list[str]) -> TextDataset:
    index = {name: i for i, name in enumerate(vocabulary)}
    labels = np.array([index[name] for name in names], dtype=np.int64)  # (N,)
    return TextDataset(texts=split.texts, labels=labels, label_names=list(vocabulary), source=str(split.path))


# ------------------------------------------------------------------------------------------- carving


def carve(
    data: TextDataset, fraction: float, seed: int, what: str, notes: list[str]
) -> tuple[TextDataset, TextDataset]:
    """Split `data` into (rest, carved): a stratified `fraction`, the same rows for the same seed.

    Classes with a single row stay in `rest`, so every training class keeps a row. When stratifying is
    impossible (fewer carved rows than classes) the split is a plain shuffled one, and the note says so.

    Example:
        >>> train, validation = carve(train, 0.1, 42, "validation", notes)  # doctest: +SKIP
        >>> notes[-1]  # doctest: +SKIP
        'validation carved from train: 1,001 rows (10%, stratified, seed 42)'
    """
    from sklearn.model_selection import train_test_split  # here, not at import: it slows every command's start

    counts = np.bincount(data.labels, minlength=data.num_labels)
    pool = np.flatnonzero(counts[data.labels] >= 2)  # rows of classes that can give one away
    singles = np.flatnonzero(counts[data.labels] < 2)
    size = int(np.ceil(fraction * len(data)))
    how = "stratified"
    try:
        keep, taken = train_test_split(pool, test_size=size, random_state=seed, stratify=data.labels[pool])
    except ValueError:
        how = "not stratified: too few rows per class"
        keep, taken = train_test_split(np.arange(len(data)), test_size=size, random_state=seed)
        singles = np.array([], dtype=np.int64)
    keep = np.sort(np.concatenate([keep, singles]))
    taken = np.sort(taken)
    if len(np.unique(data.labels[keep])) < 2:
        raise DataError(
            f"too few training rows to carve a {what} split ({len(data)} rows)",
            path=data.source,
            hint=f"pass a {what} file (data.{what})",
        )
    source = "all rows" if what == "test" else "train"
    notes.append(f"{what} carved from {source}: {len(taken):,} rows ({fraction:.0%}, {how}, seed {seed})")
    return data.subset(keep), data.subset(taken, source=f"{data.source} ({what} carved)")
