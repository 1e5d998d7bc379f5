"""File readers: CSV, TSV, JSON Lines and JSON -> `RawSplit` rows that remember where they came from.

Readers only parse. They keep texts and labels as written (label names or integer ids) together with the
line each row starts on, so that `textkd.data.loading` can validate them and point at the exact line of a
bad row. Every problem a user can fix raises `DataError` naming the file and the line.

Example:
    >>> raw = read_table("train.tsv", text_column="0", label_column="1")  # doctest: +SKIP
    >>> raw.texts[0], raw.labels[0], raw.lines[0]  # doctest: +SKIP
    ('体验2D巅峰 倚天屠龙记十大创新概览', '8', 1)
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textkd.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "json")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
# Table files by extension; a .txt file is TSV as labelled data but one text per line as texts alone.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
_INT = re.compile(r"^-?\d+$")
_DEFAULT_COLUMNS = {"text": 0, "label": 1}

# Some texts are long articles; the csv module's default 128 KiB field limit would reject them.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class RawSplit:
    """Rows of one split as read: texts and raw labels (names or integer ids) with their positions.

    Attributes:
        path: the file the rows come from (used in every message about them).
        texts: texts as written (not yet stripped or checked).
        labels: label names (str) or integer ids (int, or str of digits in CSV/TSV).
        lines: 1-based line where each row starts, or its 1-based item number when `unit == "item"`.
        unit: "line" for line-oriented files, "item" for rows of a JSON document.
    """

    path: Path
    texts: list[str] = field(default_factory=list)
    labels: list[str | int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    unit: str = "line"

    def __len__(self) -> int:
        return len(self.texts)

    def append(self, text: str, label: str | int, line: int) -> None:
        self.texts.append(text)
        self.labels.append(label)
        self.lines.append(line)

    def extend(self, other: RawSplit) -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.lines += other.lines

    def subset(self, keep: list[int]) -> RawSplit:
        return RawSplit(
            self.path,
            [self.texts[i] for i in keep],
            [self.labels[i] for i in keep],
            [self.lines[i] for i in keep],
            self.unit,
        )

    def error(self, index: int, message: str, *, hint: str | None = None) -> DataError:
        """A `DataError` about row `index`, naming the file and its line (or JSON item)."""
        if self.unit == "line":
            return DataError(message, path=self.path, line=self.lines[index], hint=hint)
        return DataError(f"item {self.lines[index]}: {message}", path=self.path, hint=hint)


def is_int_label(value: str | int) -> bool:
    """True for integer label ids: JSON integers or strings of digits."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or bool(_INT.match(value))


def guess_format(path: str | Path, fmt: str | None = None) -> str:
    """The format of `path`: `fmt` when given, else from the extension (.txt counts as TSV).

    Example:
        >>> guess_format("data/train.jsonl")
        'jsonl'
    """
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}", path=path, hint=f"use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise DataError(
            f"cannot tell the format from the extension {suffix or '(none)'!r}",
            path=path,
            hint=f"set data.format to one of {', '.join(FORMATS)}",
        )
    return _EXTENSIONS[suffix]


def read_text(path: str | Path) -> str:
    """The whole file as text; missing, empty or non-UTF-8 files raise `DataError` saying where.

    Example:
        >>> read_text("train.csv")[:10]  # doctest: +SKIP
        'text,categ'
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path, hint="check the path (relative paths start at the cwd)")
    if not path.is_file():
        raise DataError("not a file", path=path, hint="pass the path of a data file, not a folder")
    data = path.read_bytes()
    bom = b"\xef\xbb\xbf"
    offset = len(bom) if data.startswith(bom) else 0
    try:
        text = data[offset:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise _decode_error(path, data, offset + err.start) from None
    if not text.strip():
        raise DataError("file is empty", path=path, hint="write one example per row")
    return text


def _decode_error(path: Path, data: bytes, position: int) -> DataError:
    line = data.count(b"\n", 0, position) + 1
    column = position - (data.rfind(b"\n", 0, position) + 1) + 1
    return DataError(
        f"byte 0x{data[position]:02x} at byte offset {position} (column {column}) is not valid UTF-8",
        path=path,
        line=line,
        hint="re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`",
    )


def read_label_file(path: str | Path) -> list[str]:
    """Label names in order: a JSON list, or one name per line (blank lines ignored).

    Example:
        >>> read_label_file("thucnews/class.txt")[:2]  # doctest: +SKIP
        ['finance', 'realty']
    """
    path = Path(path)
    text = read_text(path)
    if path.suffix.lower() == ".json":
        names = _parse_json(path, text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError("a JSON label file must be a list of strings", path=path)
        numbered = [(i + 1, n.strip()) for i, n in enumerate(names)]
    else:
        numbered = [(i + 1, n.strip()) for i, n in enumerate(text.splitlines()) if n.strip()]
    seen: dict[str, int] = {}
    for number, name in numbered:
        if name in seen:
            where = "line" if path.suffix.lower() != ".json" else "item"
            raise DataError(f"{where} {number}: label {name!r} repeats {where} {seen[name]}", path=path)
        seen[name] = number
    return list(seen)


def read_table(
    path: str | Path,
    *,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    has_header: bool | None = None,
    label_names: list[str] | None = None,
) -> RawSplit:
    """Read one split in any supported format.

    Args:
        path: the file.
        fmt: csv | tsv | jsonl | json; None guesses from the extension.
        text_column: column name or key of the text; for header-less files or [text, label] pairs an index.
        label_column: column name or key of the label.
        has_header: CSV/TSV only; None guesses (see `read_delimited`).
        label_names: names from a label file; they help tell a header row from a data row.

    Example:
        >>> raw = read_table("banking77/train.csv", label_column="category")  # doctest: +SKIP
        >>> len(raw)  # doctest: +SKIP
        10003
    """
    fmt = guess_format(path, fmt)
    if fmt in ("csv", "tsv"):
        return read_delimited(
            path,
            delimiter="," if fmt == "csv" else "\t",
            text_column=text_column,
            label_column=label_column,
            has_header=has_header,
            label_names=label_names,
        )
    if fmt == "jsonl":
        return read_jsonl(path, text_column=text_column, label_column=label_column)
    return read_json(path, text_column=text_column, label_column=label_column)


def read_texts(path: str | Path, *, fmt: str | None = None, text_column: str = "text") -> list[str]:
    """The texts of an unlabelled table (CSV, TSV, JSON Lines, JSON), stripped, blank ones skipped.

    In CSV/TSV the first row is a header when it holds `text_column`; an integer `text_column` picks a column
    of a file without a header. JSON rows are objects with that key, lists (the column index, default 0) or
    plain strings.

    Example:
        >>> read_texts("queries.csv", text_column="query")  # doctest: +SKIP
        ['card not working', ...]
    """
    path = Path(path)
    fmt = guess_format(path, fmt)
    if fmt in ("csv", "tsv"):
        rows = _parse_rows(path, read_text(path), "," if fmt == "csv" else "\t")
        header = [cell.strip() for cell in rows[0][1]]
        if text_column in header:
            index, rows = header.index(text_column), rows[1:]
        elif _INT.match(text_column):
            index = int(text_column)
        else:
            raise DataError(
                f"no column {text_column!r} in the first row ({', '.join(repr(h) for h in header)})",
                path=path,
                line=1,
                hint="set the text column (--text-column) to its name, or to its index "
                "(0, 1, ...) for a file without a header",
            )
        texts = []
        for line, row in rows:
            if index >= len(row):
                raise DataError(f"{len(row)} fields, no column {index}", path=path, line=line)
            texts.append(row[index])
    else:
        read = read_jsonl if fmt == "jsonl" else read_json
        texts = read(path, text_column=text_column, label_column=None).texts
    return [text.strip() for text in texts if text.strip()]


def _parse_json_line(path: Path, line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(
            f"malformed JSON line: {err.msg} (column {err.colno})",
            path=path,
            line=number,
            hint="each line must be one JSON object (or, for texts alone, a string)",
        ) from None


# ------------------------------------------------------------------------------------------ CSV / TSV


def read_delimited(
    path: str | Path,
    *,
    delimiter: str = ",",
    text_column: str = "text",
    label_column: str = "label",
    has_header: bool | None = None,
    label_names: list[str] | None = None,
) -> RawSplit:
    """Read CSV (RFC 4180 quoting, multi-line quoted texts) or TSV (no quoting, as THUCNews).

    With `has_header=None` the first row is a header when it holds `text_column` or `label_column`;
    otherwise it is data when its label field looks like a label: an integer id, a name from
    `label_names`, or a value that occurs again in that column. Header-less files address columns by
    index; the default names "text" and "label" mean columns 0 and 1.

    Example:
        >>> raw = read_delimited("dev.txt", delimiter="\\t")  # doctest: +SKIP
    """
    path = Path(path)
    rows = _parse_rows(path, read_text(path), delimiter)
    if not rows:
        raise DataError("file is empty", path=path)
    first = rows[0][1]
    if has_header is None:
        has_header = _looks_like_header(rows, text_column, label_column, label_names)
    if has_header:
        header = [name.strip() for name in first]
        text_index = _column_index(path, header, text_column, "text_column")
        label_index = _column_index(path, header, label_column, "label_column")
        rows = rows[1:]
        if not rows:
            raise DataError("no data rows, only a header", path=path, line=1)
    else:
        text_index = _position(path, text_column, "text_column")
        label_index = _position(path, label_column, "label_column")
    width = len(first)
    raw = RawSplit(path)
    for line, row in rows:
        if len(row) != width:
            hint = "quote texts that contain commas" if delimiter == "," else "remove tabs inside texts"
            raise DataError(f"{len(row)} fields, expected {width}", path=path, line=line, hint=hint)
        raw.append(row[text_index], row[label_index].strip(), line)
    return raw


def _parse_rows(path: Path, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(start line, fields) for each non-blank row."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"malformed CSV: {err}", path=path, line=start, hint="check the quotes") from None
    return rows


def _looks_like_header(
    rows: list[tuple[int, list[str]]], text_column: str, label_column: str, label_names: list[str] | None
) -> bool:
    first = [cell.strip() for cell in rows[0][1]]
    # Column indices ("0", "1") are no header evidence: a data row's label field may well read "1".
    if _INT.match(text_column) and _INT.match(label_column):
        return False
    names = [column for column in (text_column, label_column) if not _INT.match(column)]
    if any(column in first for column in names):
        return True
    index = int(label_column) if _INT.match(label_column) else _DEFAULT_COLUMNS["label"]
    if index >= len(first):
        return True  # cannot be a data row; the column lookup then names the columns found
    value = first[index]
    if _INT.match(value) or (label_names is not None and value in label_names):
        return False
    # A header name occurs once; a label of a data row usually occurs again in the same column.
    return not any(len(row) > index and row[index].strip() == value for _, row in rows[1:])


def _column_index(path: Path, header: list[str], column: str, option: str) -> int:
    if column in header:
        return header.index(column)
    if _INT.match(column) and int(column) < len(header):
        return int(column)
    raise DataError(
        f"no column {column!r}; the header has {', '.join(repr(h) for h in header)}",
        path=path,
        line=1,
        hint=f"set data.{option} (--{option.replace('_', '-')}) to one of them, or data.has_header=false if the "
        f"file has no header",
    )


def _position(path: Path, column: str, option: str) -> int:
    if _INT.match(column):
        return int(column)
    if column in _DEFAULT_COLUMNS:
        return _DEFAULT_COLUMNS[column]
    raise DataError(
        f"the file has no header, so data.{option} must be a column index, not {column!r}",
        path=path,
        line=1,
        hint=f"set data.{option} to 0, 1, ... or data.has_header=true",
    )


# ------------------------------------------------------------------------------------------------ JSON


def read_jsonl(path: str | Path, *, text_column: str = "text", label_column: str | None = "label") -> RawSplit:
    """Read JSON Lines: one object (or [text, label] pair) per line; blank lines are skipped.

    Example:
        >>> raw = read_jsonl("massive/en-US/train.jsonl", label_column="label_text")  # doctest: +SKIP
    """
    path = Path(path)
    raw = RawSplit(path)
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        item = _parse_json_line(path, line, number)

        def error(message: str, number: int = number) -> DataError:
            return DataError(message, path=path, line=number)

        text, label = _fields(item, text_column, label_column, error)
        raw.append(text, label, number)
    return raw


def read_json(path: str | Path, *, text_column: str = "text", label_column: str | None = "label") -> RawSplit:
    """Read a JSON document: a list of objects or a list of [text, label] pairs.

    Example:
        >>> raw = read_json("train.json")  # doctest: +SKIP
    """
    path = Path(path)
    items = _parse_json(path, read_text(path))
    if not isinstance(items, list):
        raise DataError(
            f"expected a JSON list of examples, found a {type(items).__name__}",
            path=path,
            hint='write [{"text": ..., "label": ...}, ...] or [[text, label], ...]',
        )
    raw = rows_from_items(path, items, text_column=text_column, label_column=label_column)
    if not raw.texts:
        raise DataError("the JSON list is empty", path=path)
    return raw


def rows_from_items(
    path: str | Path, items: list[Any], *, text_column: str = "text", label_column: str | None = "label"
) -> RawSplit:
    """Rows of an already parsed JSON list (objects or [text, label] pairs), numbered as items from 1.

    Example:
        >>> rows_from_items("data_full.json", [["hi", "greet"]]).labels
        ['greet']
    """
    raw = RawSplit(Path(path), unit="item")
    for number, item in enumerate(items, start=1):

        def error(message: str, number: int = number) -> DataError:
            return DataError(f"item {number}: {message}", path=path)

        text, label = _fields(item, text_column, label_column, error)
        raw.append(text, label, number)
    return raw


def parse_json_file(path: str | Path) -> Any:
    """A whole JSON document; malformed JSON raises `DataError` with its line and column."""
    path = Path(path)
    return _parse_json(path, read_text(path))


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON: {err.msg}", path=path, line=err.lineno, column=err.colno) from None


def _fields(
    item: Any, text_column: str, label_column: str | None, error: Callable[[str], DataError]
) -> tuple[str, str | int]:
    """(text, label) of one JSON row: an object with the two keys, or a [text, label] list. With
    `label_column=None` (texts alone) a row may also be a plain string, and the label is ""."""
    if label_column is None and isinstance(item, str):
        return item, ""
    columns = [text_column] if label_column is None else [text_column, label_column]
    if isinstance(item, dict):
        for key in columns:
            if key not in item:
                keys = ", ".join(repr(k) for k in item) or "none"
                raise error(f"no key {key!r}; keys are {keys}")
        values = [item[key] for key in columns]
    elif isinstance(item, list):
        indices = [
            int(column) if _INT.match(column) else _DEFAULT_COLUMNS[kind]
            for column, kind in zip(columns, ("text", "label"), strict=False)
        ]
        needed = max(indices) + 1
        if len(item) < needed:
            raise error(f"a list row needs at least {needed} values, found {len(item)}")
        values = [item[index] for index in indices]
    else:
        raise error(f"expected an object or a [text, label] list, found {type(item).__name__}")
    text, label = values[0], (values[1] if label_column is not None else "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise error(f"the text must be a string, found {type(text).__name__}")
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise error(f"the label must be a name or an integer id, found {json.dumps(label)}")
    return text, label.strip() if isinstance(label, str) else label
