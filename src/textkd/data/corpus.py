"""Text corpora larger than memory: read in chunks, tokenised into memory-mapped arrays on disk.

A corpus is a UTF-8 text file with one text per line (blank lines are skipped; row i is the i-th non-blank
line). Nothing here holds more than one chunk of texts in memory: `encode_file` writes token ids to disk as
it goes and returns an `EncodedSplit` whose arrays are memory-mapped, and `concat_encoded` joins splits the
same way. Memory then grows with the chunk size, not with the corpus (8 bytes of lengths per row aside).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from textkd.data.readers import TABLE_SUFFIXES
from textkd.data.tokenize import EncodedSplit, encode, tokenizer_fingerprint
from textkd.errors import DataError
from textkd.utils import atomic_write_json

CHUNK_TEXTS = 8192  # texts read, tokenised and written at a time


def file_fingerprint(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def iter_text_chunks(path: str | Path, chunk_size: int = CHUNK_TEXTS) -> Iterator[tuple[int, list[str]]]:
    """(first row, texts) for consecutive chunks of the non-blank lines of `path`.

    Raises:
        DataError: the file is missing or not UTF-8 (naming the line).

    Example:
        >>> list(iter_text_chunks("corpus.txt", 2))  # doctest: +SKIP
        [(0, ['first text', 'second']), (2, ['third'])]
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such corpus file", path=path, hint="one text per line, UTF-8")
    if path.suffix.lower() in TABLE_SUFFIXES:  # its header, keys and labels would be labelled as texts
        raise DataError(
            f"a corpus is plain text, one text per line, not a {path.suffix} table",
            path=path,
            hint="write its text column to a .txt file first (rename the file if it is plain text)",
        )
    chunk: list[str] = []
    start = 0
    with open(path, "rb") as handle:  # bytes, decoded per line: a decoding error names its line
        for line_no, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"not UTF-8: {err.reason}", path=path, line=line_no) from None
            if line_no == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark
            if not text.strip():
                continue
            chunk.append(text)
            if len(chunk) == chunk_size:
                yield start, chunk
                start += len(chunk)
                chunk = []
    if chunk:
        yield start, chunk


def count_texts(path: str | Path) -> int:
    """The number of non-blank lines (rows) of a corpus file, read in chunks."""
    return sum(len(texts) for _, texts in iter_text_chunks(path))


def _open_memmapped(folder: Path, key: str) -> EncodedSplit | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("key") != key:
        return None
    offsets = np.load(folder / "offsets.npy", mmap_mode="r")
    total = int(offsets[-1])
    ids = np.memmap(folder / "ids.bin", dtype=np.int32, mode="r", shape=(total,)) if total else np.zeros(0, np.int32)
    return EncodedSplit(ids=ids, offsets=offsets, pad_token_id=int(meta["pad_token_id"]), key=key)


class _EncodedWriter:
    """Appends token ids to `ids.bin` and lengths to memory; `close` writes offsets.npy and meta.json."""

    def __init__(self, folder: Path, key: str, pad_token_id: int, rows: int) -> None:
        self.folder, self.key, self.pad_token_id = folder, key, pad_token_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)  # incomplete until close() rewrites it
        self.offsets = np.lib.format.open_memmap(folder / "offsets.npy", mode="w+", dtype=np.int64, shape=(rows + 1,))
        self.offsets[0] = 0
        self.row = 0
        self.handle = open(folder / "ids.bin", "wb")  # noqa: SIM115 (closed in close())

    def add(self, encoded: EncodedSplit) -> None:
        n = len(encoded)
        self.offsets[self.row + 1 : self.row + n + 1] = self.offsets[self.row] + encoded.offsets[1:]
        self.handle.write(np.ascontiguousarray(encoded.ids, dtype=np.int32).tobytes())
        self.row += n

    def close(self) -> EncodedSplit:
        self.handle.close()
        if self.row != len(self.offsets) - 1:
            raise DataError(f"expected {len(self.offsets) - 1} rows, wrote {self.row}", path=self.folder)
        self.offsets.flush()
        del self.offsets
        atomic_write_json(
            self.folder / "meta.json", {"key": self.key, "rows": self.row, "pad_token_id": self.pad_token_id}
        )
        found = _open_memmapped(self.folder, self.key)
        assert found is not None
        return found


def encode_file(
    path: str | Path, tokenizer, max_len: int, folder: str | Path, *, chunk_size: int = CHUNK_TEXTS
) -> EncodedSplit:
    """Tokenise every row of a corpus file into memory-mapped arrays under `folder` (reused when present).

    Example:
        >>> enc = encode_file("corpus.txt", tokenizer, 64, "runs/cache/corpus")  # doctest: +SKIP
        >>> len(enc), type(enc.ids).__name__  # doctest: +SKIP
        (1000000, 'memmap')
    """
    folder = Path(folder)
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_len}-file:{file_fingerprint(path)}"
    found = _open_memmapped(folder, key)
    if found is not None:
        return found
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    writer = _EncodedWriter(folder, key, int(pad), count_texts(path))
    for _, texts in iter_text_chunks(path, chunk_size):
        writer.add(encode(texts, tokenizer, max_len, memo=False))
    return writer.close()


def concat_encoded(parts: Sequence[EncodedSplit], folder: str | Path, *, chunk_rows: int = 65536) -> EncodedSplit:
    """Join encoded splits (in memory or memory-mapped) into one memory-mapped split under `folder`.

    All parts must share the pad id (one tokenizer). Copies `chunk_rows` rows at a time.
    """
    if len({p.pad_token_id for p in parts}) > 1:
        raise ValueError("cannot join splits encoded with different pad ids (different tokenizers)")
    key = "concat-" + hashlib.sha256("|".join(p.key for p in parts).encode()).hexdigest()[:16]
    folder = Path(folder)
    found = _open_memmapped(folder, key)
    if found is not None:
        return found
    writer = _EncodedWriter(folder, key, parts[0].pad_token_id, sum(len(p) for p in parts))
    for part in parts:
        for start in range(0, len(part), chunk_rows):
            stop = min(start + chunk_rows, len(part))
            base = int(part.offsets[start])
            offsets = np.asarray(part.offsets[start : stop + 1], dtype=np.int64) - base
            ids = np.asarray(part.ids[base : int(part.offsets[stop])])
            writer.add(EncodedSplit(ids=ids, offsets=offsets, pad_token_id=part.pad_token_id, key=""))
    return writer.close()
