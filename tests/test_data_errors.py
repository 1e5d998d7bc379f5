"""Bad input raises DataError (or ConfigError) with one line naming the file, the line and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from textkd.config import DataConfig
from textkd.data.loading import load_splits
from textkd.errors import ConfigError, DataError

GOOD_ROWS = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(10))


def write(folder: Path, name: str, content: str | bytes) -> str:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def load(tmp_path: Path, train: str, test: str | None = None, **kwargs) -> None:
    """Load name="files" with `train` and `test` (a copy of the good rows unless given)."""
    test = test or write(tmp_path, "test.csv", "text,label\n" + GOOD_ROWS)
    load_splits(DataConfig(name="files", train=train, test=test, **kwargs))


def where(path: str, line: int | None = None) -> str:
    """Regex for the start of a message about `path` (and `line`)."""
    return "^" + re.escape(path) + (f":{line}" if line is not None else "") + ": "


def raises(tmp_path: Path, pattern: str, train: str, test: str | None = None, **kwargs) -> DataError:
    with pytest.raises(DataError, match=pattern) as info:
        load(tmp_path, train, test, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.csv")
    raises(tmp_path, where(path) + "file not found", path)


def test_empty_file_and_header_only(tmp_path):
    empty = write(tmp_path, "empty.csv", "  \n\n")
    raises(tmp_path, where(empty) + "file is empty", empty)
    header = write(tmp_path, "header.csv", "text,label\n")
    raises(tmp_path, where(header, 1) + "no data rows", header)


def test_missing_column_names_the_columns_found(tmp_path):
    train = write(tmp_path, "train.csv", "sentence,intent\n" + GOOD_ROWS.replace(",", ",x"))
    raises(tmp_path, where(train, 1) + r"no column 'text'; the header has 'sentence', 'intent'", train)


def test_undecodable_bytes_give_line_and_offset(tmp_path):
    train = write(tmp_path, "train.csv", b"text,label\nfine,a\ncaf\xe9,b\n")
    error = raises(tmp_path, where(train, 3) + r"byte 0xe9 at byte offset 21 \(column 4\) is not valid UTF-8", train)
    assert "UTF-8" in (error.hint or "")


def test_empty_texts_error_names_first_line_and_count(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + GOOD_ROWS + '" ",a\n,b\n')
    raises(
        tmp_path,
        where(train, 12) + r"empty text \(2 empty or whitespace-only texts",
        train,
        empty_texts="error",
    )


def test_unseen_label_in_test_and_validation(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + GOOD_ROWS)
    test = write(tmp_path, "test.csv", "text,label\nok,a\nnew one,zzz\nagain,zzz\n")
    pattern = where(test, 3) + r"label 'zzz' does not occur in the training split .*train\.csv \(2 rows"
    raises(tmp_path, pattern, train, test)
    dev = write(tmp_path, "dev.jsonl", '{"text": "x", "label": "a"}\n{"text": "y", "label": "c"}\n')
    raises(tmp_path, where(dev, 2) + "label 'c' does not occur", train, validation=dev)


def test_single_class_in_train(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + "".join(f"t{i},a\n" for i in range(5)))
    raises(tmp_path, where(train) + r"the training split has a single class \('a'\)", train)


def test_malformed_json_line(tmp_path):
    train = write(tmp_path, "train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n')
    raises(tmp_path, where(train, 2) + r"malformed JSON line: Expecting value \(column 24\)", train)


def test_malformed_json_document_and_missing_key(tmp_path):
    broken = write(tmp_path, "broken.json", '[\n {"text": "a", "label": "x"},\n {"text": }\n]')
    raises(tmp_path, "^" + re.escape(broken) + ":3:11: malformed JSON: Expecting value", broken)
    missing = write(tmp_path, "missing.json", json.dumps([{"text": "a", "label": "x"}, {"text": "b"}]))
    raises(tmp_path, where(missing) + r"item 2: no key 'label'; keys are 'text'", missing)


def test_label_id_out_of_range_and_unknown_name(tmp_path):
    labels = write(tmp_path, "class.txt", "finance\nrealty\n")
    train = write(tmp_path, "train.tsv", "a headline\t0\nanother\t1\nbad one\t12\n")
    raises(
        tmp_path,
        where(train, 3) + r"label id 12 is out of range: the label file has 2 names",
        train,
        label_file=labels,
    )
    named = write(tmp_path, "named.tsv", "a headline\tfinance\nanother\tsports\n")
    raises(tmp_path, where(named, 2) + r"label 'sports' is not in the label file", named, label_file=labels)


def test_wrong_field_count_and_unclosed_quote(tmp_path):
    tsv = write(tmp_path, "train.tsv", "one\t0\ntwo\twith\ttabs\t1\n")
    raises(tmp_path, where(tsv, 2) + r"4 fields, expected 2 — remove tabs", tsv)
    unclosed = write(tmp_path, "train.csv", 'text,label\nok,a\n"never closed,b\nmore,a\n')
    raises(tmp_path, where(unclosed, 3) + "malformed CSV", unclosed)


def test_empty_label(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + GOOD_ROWS + "no label here,\n")
    raises(tmp_path, where(train, 12) + "empty label", train)


def test_unknown_extension(tmp_path):
    train = write(tmp_path, "train.parquet", "x")
    raises(tmp_path, where(train) + r"cannot tell the format from the extension '\.parquet'", train)


def test_too_few_rows_to_carve(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\nonly a,a\nonly b,b\n")
    raises(tmp_path, "too few training rows to carve a validation split", train)


def test_config_errors(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + GOOD_ROWS)
    with pytest.raises(ConfigError, match="data.test is required"):
        load_splits(DataConfig(name="files", train=train))
    with pytest.raises(ConfigError, match="data.empty_texts must be"):
        load_splits(DataConfig(name="files", train=train, test=train, empty_texts="keep"))
    with pytest.raises(ConfigError, match="unknown dataset 'bankin77'.*did you mean 'banking77'"):
        load_splits(DataConfig(name="bankin77"))
    with pytest.raises(ConfigError, match="unknown variant 'tiny' for clinc150"):
        load_splits(DataConfig(name="clinc150", variant="tiny"))


def test_nothing_is_written_on_error(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\n" + GOOD_ROWS + ",a\n")
    test = write(tmp_path, "test.csv", "text,label\n" + GOOD_ROWS)
    before = sorted(tmp_path.rglob("*"))
    raises(tmp_path, "empty text", train, test, empty_texts="error")
    assert sorted(tmp_path.rglob("*")) == before


def test_file_paths_without_data_name_files_are_refused(tmp_path):
    # They were ignored: the run trained and reported on the default preset instead of the user's files.
    cfg = DataConfig(name="bbc-news", train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"))
    with pytest.raises(
        ConfigError, match="data.train is only read with data.name 'files', but data.name is 'bbc-news'"
    ) as caught:
        load_splits(cfg)
    assert "--data files" in caught.value.hint
    with pytest.raises(ConfigError, match="data.label_file is only read"):
        load_splits(DataConfig(name="banking77", label_file=str(tmp_path / "labels.txt")))
