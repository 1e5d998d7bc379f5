"""Local files -> DatasetSplits: formats, header guessing, label files, empty texts, carving."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textkd.config import DataConfig
from textkd.data.loading import DataWarning, carve, load_splits
from textkd.data.readers import read_table, read_texts
from textkd.errors import DataError


def write(folder: Path, name: str, content: str | bytes) -> str:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def toy_rows(n_per_class: int = 10, classes: tuple[str, ...] = ("greet", "bye", "thanks")) -> list[tuple[str, str]]:
    return [(f"{label} example number {i}", label) for label in classes for i in range(n_per_class)]


def csv_text(rows: list[tuple[str, str]], header: tuple[str, str] | None = ("text", "label")) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: \r\n rows, so a bare \r inside a text gets quoted
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def files_cfg(**kwargs) -> DataConfig:
    return DataConfig(name="files", **kwargs)


def test_csv_with_header_and_carved_validation(tmp_path):
    train = write(tmp_path, "train.csv", csv_text(toy_rows(10)))
    test = write(tmp_path, "test.csv", csv_text(toy_rows(2)))
    splits = load_splits(files_cfg(train=train, test=test))
    assert splits.label_names == ["bye", "greet", "thanks"]  # sorted without a label file
    assert len(splits.train) + len(splits.validation) == 30
    assert len(splits.validation) == 3 and len(splits.test) == 6
    assert sorted(splits.validation.class_counts().values()) == [1, 1, 1]  # stratified
    assert splits.notes == ["validation carved from train: 3 rows (10%, stratified, seed 42)"]


def test_csv_multiline_quoted_text_keeps_line_numbers(tmp_path):
    content = 'text,label\n"first line\nsecond line, with comma",a\n"say ""hi""",b\nplain,a\n'
    raw = read_table(write(tmp_path, "train.csv", content))
    assert raw.texts == ["first line\nsecond line, with comma", 'say "hi"', "plain"]
    assert raw.lines == [2, 4, 5]


def test_headerless_tsv_with_label_file_ids(tmp_path):
    write(tmp_path, "class.txt", "finance\nrealty\nstocks")
    rows = [f"headline {i} about {name}\t{label}" for i in range(6) for label, name in enumerate("abc")]
    train = write(tmp_path, "train.txt", "\n".join(rows) + "\n")
    test = write(tmp_path, "test.txt", 'a "quoted" headline\t2\nother one\t0\n')
    cfg = files_cfg(train=train, test=test, label_file=str(tmp_path / "class.txt"))
    splits = load_splits(cfg)
    assert splits.label_names == ["finance", "realty", "stocks"]  # label-file order kept
    assert splits.test.texts[0] == 'a "quoted" headline'  # TSV has no quoting
    assert splits.test.labels.tolist() == [2, 0]
    assert len(splits.train) + len(splits.validation) == 18


def test_column_indices_never_turn_a_data_row_into_a_header(tmp_path):
    # The first row's label "0" equals text_column "0": that is no header (a bug once read labels as texts).
    path = write(tmp_path, "train.txt", "股市今日大涨\t0\n球队今日大涨\t1\n游戏今日大涨\t2\n")
    raw = read_table(path, text_column="0", label_column="1")
    assert raw.texts == ["股市今日大涨", "球队今日大涨", "游戏今日大涨"]
    assert raw.labels == ["0", "1", "2"]


def test_headerless_csv_with_repeated_names_is_data(tmp_path):
    raw = read_table(write(tmp_path, "train.csv", "hello there,greet\nhi,greet\nbye now,bye\n"))
    assert raw.texts[0] == "hello there" and raw.labels == ["greet", "greet", "bye"]


def test_named_columns_and_integer_labels_sorted_numerically(tmp_path):
    rows = [(f"text {i}", str(i % 12)) for i in range(48)]
    train = write(tmp_path, "train.csv", csv_text(rows, header=("sentence", "intent")))
    test = write(tmp_path, "test.csv", csv_text(rows[:12], header=("sentence", "intent")))
    splits = load_splits(files_cfg(train=train, test=test, text_column="sentence", label_column="intent"))
    assert splits.label_names == [str(i) for i in range(12)]


def test_label_file_json_names_and_jsonl(tmp_path):
    write(tmp_path, "categories.json", json.dumps(["card_arrival", "top_up", "unused"]))
    lines = [json.dumps({"text": f"t{i}", "label": ["card_arrival", "top_up"][i % 2]}) for i in range(20)]
    train = write(tmp_path, "train.jsonl", "\n".join(lines) + "\n\n")
    test = write(tmp_path, "test.jsonl", lines[0] + "\n")
    splits = load_splits(files_cfg(train=train, test=test, label_file=str(tmp_path / "categories.json")))
    assert splits.label_names == ["card_arrival", "top_up", "unused"]
    assert splits.test.labels.tolist() == [0]


def test_json_list_of_objects_and_of_pairs(tmp_path):
    objects = [{"text": f"x {i}", "label": i % 2, "id": i} for i in range(10)]
    pairs = [[f"y {i}", i % 2] for i in range(4)]
    splits = load_splits(
        files_cfg(
            train=write(tmp_path, "train.json", json.dumps(objects)),
            validation=write(tmp_path, "dev.json", json.dumps(pairs)),
            test=write(tmp_path, "test.json", json.dumps(pairs)),
        )
    )
    assert splits.label_names == ["0", "1"] and len(splits.train) == 10
    assert splits.validation.texts == ["y 0", "y 1", "y 2", "y 3"] and splits.notes == []


def test_empty_texts_dropped_with_warning(tmp_path):
    rows = toy_rows(5) + [("   ", "greet"), ("", "bye")]
    train = write(tmp_path, "train.csv", csv_text(rows))
    test = write(tmp_path, "test.csv", csv_text(toy_rows(1)))
    with pytest.warns(DataWarning, match=r"dropped 2 empty or whitespace-only texts from .*train\.csv"):
        splits = load_splits(files_cfg(train=train, test=test))
    assert len(splits.train) + len(splits.validation) == 15
    assert any(note.startswith("dropped 2 empty") for note in splits.notes)


def test_texts_are_stripped(tmp_path):
    train = write(tmp_path, "train.csv", csv_text([("  padded  ", "a"), ("b text", "b")] * 10))
    splits = load_splits(files_cfg(train=train, test=train))
    assert "padded" in splits.test.texts


def test_carve_is_stratified_deterministic_and_never_touches_test(tmp_path):
    train = write(tmp_path, "train.csv", csv_text(toy_rows(20, ("a", "b", "c", "d"))))
    test_rows = [(f"held-out {i}", "abcd"[i % 4]) for i in range(8)]
    test = write(tmp_path, "test.csv", csv_text(test_rows))
    first = load_splits(files_cfg(train=train, test=test, split_seed=7, validation_fraction=0.2))
    again = load_splits(files_cfg(train=train, test=test, split_seed=7, validation_fraction=0.2))
    other = load_splits(files_cfg(train=train, test=test, split_seed=8, validation_fraction=0.2))
    assert first.validation.texts == again.validation.texts and first.train.texts == again.train.texts
    assert first.validation.texts != other.validation.texts
    assert set(first.validation.class_counts().values()) == {4}
    assert not set(first.train.texts) & set(first.validation.texts)
    seen = set(first.train.texts) | set(first.validation.texts)
    assert not seen & {text for text, _ in test_rows}
    assert first.test.texts == [text for text, _ in test_rows]


def test_carve_keeps_single_row_classes_in_train(tmp_path):
    rows = toy_rows(10, ("a", "b")) + [("only one of these", "rare")]
    train = write(tmp_path, "train.csv", csv_text(rows))
    splits = load_splits(files_cfg(train=train, test=write(tmp_path, "test.csv", csv_text(rows[:2]))))
    assert splits.train.class_counts()["rare"] == 1


def test_carve_function_returns_disjoint_cover():
    from textkd.data.dataset import TextDataset

    data = TextDataset([f"t{i}" for i in range(50)], np.arange(50) % 5, list("abcde"))
    notes: list[str] = []
    rest, carved = carve(data, 0.2, 3, "validation", notes)
    assert sorted(rest.texts + carved.texts) == sorted(data.texts) and len(carved) == 10
    assert notes == ["validation carved from train: 10 rows (20%, stratified, seed 3)"]


_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1)
_clean = _cell.filter(lambda t: t.strip() == t and t != "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_clean, _clean), min_size=1, max_size=12))
def test_csv_round_trip(tmp_path, rows):
    path = tmp_path / "rows.csv"
    path.write_text(csv_text(rows), encoding="utf-8", newline="")
    raw = read_table(path)
    assert list(zip(raw.texts, raw.labels, strict=True)) == rows


# ------------------------------------------------------------------------------------- texts alone (predict)


def test_read_texts_takes_one_column_of_any_table(tmp_path):
    (tmp_path / "q.csv").write_text('id,query\n1,"card, lost"\n2,  \n3,refund\n', encoding="utf-8")
    assert read_texts(tmp_path / "q.csv", text_column="query") == ["card, lost", "refund"]  # blank skipped
    (tmp_path / "q.tsv").write_text("card lost\tx\nrefund\ty\n", encoding="utf-8")
    assert read_texts(tmp_path / "q.tsv", text_column="0") == ["card lost", "refund"]  # no header
    (tmp_path / "q.jsonl").write_text('{"q": "card lost"}\n\n"refund"\n["top up", "x"]\n', encoding="utf-8")
    assert read_texts(tmp_path / "q.jsonl", text_column="q") == ["card lost", "refund", "top up"]
    (tmp_path / "q.json").write_text('[{"q": "card lost"}, {"q": null}, "refund"]', encoding="utf-8")
    assert read_texts(tmp_path / "q.json", text_column="q") == ["card lost", "refund"]


def test_read_texts_errors_name_the_file_line_and_option(tmp_path):
    (tmp_path / "q.csv").write_text("id,query\n1,card\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.csv:1: no column 'text' in the first row \('id', 'query'\)") as caught:
        read_texts(tmp_path / "q.csv")
    assert "--text-column" in caught.value.hint
    (tmp_path / "q.tsv").write_text("card\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.tsv:1: 1 fields, no column 1"):
        read_texts(tmp_path / "q.tsv", text_column="1")
    (tmp_path / "q.jsonl").write_text('{"q": "card"}\n{"q": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"q.jsonl:1: no key 'text'; keys are 'q'"):
        read_texts(tmp_path / "q.jsonl")
    with pytest.raises(DataError, match=r"q.jsonl:2: the text must be a string, found int"):
        read_texts(tmp_path / "q.jsonl", text_column="q")
    (tmp_path / "q.json").write_text('[{"q": "card"}, {"text": "x"}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"q.json: item 2: no key 'q'"):
        read_texts(tmp_path / "q.json", text_column="q")
