"""Fuzzing: the file parsers raise DataError or succeed; `/predict` answers 200, 413 or 422, never a 500."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from textkd.config import DataConfig
from textkd.data.loading import load_splits
from textkd.data.readers import read_label_file, read_table
from textkd.errors import DataError
from textkd.models.io import save_model
from textkd.serving import create_app

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXTENSIONS = (".csv", ".tsv", ".txt", ".jsonl", ".json")

# Any code point, control characters, NUL and lone surrogates included; utf8_text lacks only the surrogates.
any_text = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    ),
    max_size=40,
)
utf8_text = st.text(st.characters(codec="utf-8"), max_size=40)
cell = st.one_of(any_text, st.sampled_from(["text", "label", "0", "1", "a", "b", "", " ", '"', "\t", ",", "\n"]))
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(cell, inner, max_size=4)),
    max_leaves=12,
)


def _garbled_files() -> st.SearchStrategy[tuple[str, bytes]]:
    """(extension, bytes): random bytes, or random rows written as CSV, TSV, JSON Lines or JSON."""
    rows = st.lists(st.lists(cell, min_size=0, max_size=4), max_size=8)
    delimited = st.tuples(st.sampled_from([",", "\t"]), rows).map(
        lambda d: (".csv" if d[0] == "," else ".tsv", _delimited(*d))
    )
    objects = st.lists(
        st.one_of(json_value, st.fixed_dictionaries({"text": json_value, "label": json_value})), max_size=8
    )
    jsonl = st.tuples(objects, st.booleans()).map(lambda d: (".jsonl", b"\n".join(_dumps(i, d[1]) for i in d[0])))
    whole = st.tuples(json_value, st.booleans()).map(lambda d: (".json", _dumps(*d)))
    raw = st.tuples(st.sampled_from(EXTENSIONS), st.binary(max_size=200))
    return st.one_of(delimited, jsonl, whole, raw)


def _plausible_files() -> st.SearchStrategy[tuple[str, bytes]]:
    """Well-formed CSV or JSON Lines with odd texts and labels, so that validation after parsing is reached."""
    texts = st.one_of(utf8_text, utf8_text, utf8_text, any_text)
    rows = st.lists(st.tuples(texts, st.sampled_from(["a", "b", "c", " a ", "0", "1"])), min_size=1, max_size=16)
    return st.one_of(
        rows.map(lambda rows: (".csv", _delimited(",", [["text", "label"], *map(list, rows)]))),
        st.tuples(rows, st.booleans()).map(
            lambda d: (".jsonl", b"\n".join(_dumps({"text": t, "label": y}, d[1]) for t, y in d[0]))
        ),
    )


data_files = st.one_of(_garbled_files(), _plausible_files())
mostly_plausible_files = st.one_of(_garbled_files(), _plausible_files(), _plausible_files(), _plausible_files())


def _delimited(delimiter: str, rows: list[list[str]]) -> bytes:
    """CSV with RFC 4180 quoting; TSV as written by hand (no quoting, so cells may break rows)."""
    if delimiter == "\t":
        text = "\n".join("\t".join(row) for row in rows)
    else:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        text = buffer.getvalue()
    return text.encode("utf-8", "surrogatepass")


def _dumps(value, ascii: bool) -> bytes:
    """JSON bytes; a lone surrogate becomes a \\udXXX escape (ascii) or bytes that are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii).encode("utf-8", "surrogatepass")


@FUZZ
@given(content=data_files)
def test_read_table_raises_data_error_or_succeeds(content):
    suffix, data = content
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"split{suffix}"
        path.write_bytes(data)
        try:
            raw = read_table(path)
        except DataError:
            event("DataError")
            return
        event("parsed")
        assert len(raw.texts) == len(raw.labels) == len(raw.lines)
        assert all(isinstance(text, str) for text in raw.texts)


@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".txt", ".json"]))
def test_read_label_file_raises_data_error_or_succeeds(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"labels{suffix}"
        path.write_bytes(data)
        try:
            names = read_label_file(path)
        except DataError:
            return
        assert len(set(names)) == len(names)


@FUZZ
@given(train=mostly_plausible_files, test=mostly_plausible_files, carve_validation=st.booleans())
def test_load_splits_raises_data_error_or_succeeds(train, test, carve_validation):
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropped empty texts are announced with a DataWarning
        paths = {}
        for name, (suffix, data) in (("train", train), ("test", test)):
            paths[name] = Path(folder) / f"{name}{suffix}"
            paths[name].write_bytes(data)
        validation = None if carve_validation else str(paths["train"])
        try:
            splits = load_splits(
                DataConfig(name="files", train=str(paths["train"]), test=str(paths["test"]), validation=validation)
            )
        except DataError:
            event("DataError")
            return
        event("loaded")
        assert splits.num_labels >= 2 and len(splits.train) > 0


# ------------------------------------------------------------------------------------------ /predict


@pytest.fixture(scope="module")
def client(tiny_teacher, tiny_tokenizer, tmp_path_factory):
    path = save_model(tiny_teacher, tiny_tokenizer, tmp_path_factory.mktemp("fuzz") / "model")
    app = create_app(path, max_texts=8, max_chars=300, max_body_bytes=8192, max_wait_ms=0)
    with TestClient(app) as test_client:  # raises on any unhandled server error
        yield test_client
    assert test_client.get("/health").status_code == 200


huge_text = st.integers(0, 20_000).map(lambda n: "é" * n)
texts = st.lists(st.one_of(utf8_text, utf8_text, utf8_text, any_text, huge_text), max_size=6)
top_k = st.one_of(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(-3, 6),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    any_text,
)
predict_body = st.one_of(
    st.fixed_dictionaries({"texts": texts}, optional={"top_k": top_k, "extra": json_value}),
    st.fixed_dictionaries({"texts": st.one_of(json_value, st.lists(json_value, max_size=4))}),
    json_value,
)
valid_body = st.fixed_dictionaries(
    {"texts": st.lists(utf8_text, min_size=1, max_size=8)}, optional={"top_k": st.integers(1, 4)}
)


def _check(response, sent_texts=None) -> None:
    assert response.status_code in (200, 413, 422), response.text
    event(f"status {response.status_code}")
    body = response.json()
    if response.status_code != 200:
        assert body["status"] == response.status_code and isinstance(body["error"], str)
    elif sent_texts is not None:
        assert len(body["predictions"]) == len(sent_texts)


@FUZZ
@given(body=valid_body, ascii=st.booleans())
def test_predict_answers_any_valid_body(client, body, ascii):
    response = client.post("/predict", content=_dumps(body, ascii))
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(body["texts"])
    assert all(len(p["labels"]) == body.get("top_k", 3) for p in predictions)


@FUZZ
@given(body=predict_body, ascii=st.booleans())
def test_predict_never_fails_on_json_bodies(client, body, ascii):
    sent = body.get("texts") if isinstance(body, dict) else None
    _check(client.post("/predict", content=_dumps(body, ascii), headers={"content-type": "application/json"}), sent)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=2000), st.integers(8000, 9000).map(lambda n: b"[" * n)),
    chunked=st.booleans(),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
def test_predict_never_fails_on_arbitrary_bytes(client, data, chunked, content_type):
    content = (data[i : i + 1000] for i in range(0, len(data), 1000)) if chunked else data
    _check(client.post("/predict", content=content, headers={"content-type": content_type}))
