"""Tokenise a split once per (tokenizer, max_len) into a flat, padding-free array.

Texts are stored as one flat int32 array of token ids plus offsets, so a split of a million texts costs
one allocation, pads nothing, and can be memory-mapped. Padding happens per batch (`batching.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

_MEMO: dict[str, EncodedSplit] = {}
_CHUNK = 4096  # texts per tokenizer call: bounds peak memory on large corpora


@dataclass
class EncodedSplit:
    """Token ids of N texts without padding.

    Attributes:
        ids: (total_tokens,) int32, every text's ids (special tokens included) one after another.
        offsets: (N + 1,) int64; text i is ids[offsets[i]:offsets[i + 1]].
        pad_token_id: the id batches are padded with.
        key: identifies (tokenizer, max_len, texts); used by the teacher-output cache.
    """

    ids: np.ndarray
    offsets: np.ndarray
    pad_token_id: int
    key: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable id of a tokenizer's behaviour: its class, vocabulary and lower-casing."""
    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256()
    digest.update(type(tokenizer).__name__.encode())
    for token, idx in sorted(vocab.items(), key=lambda item: item[1]):
        digest.update(f"{idx}\t{token}\n".encode())
    digest.update(repr(getattr(tokenizer, "do_lower_case", None)).encode())
    return digest.hexdigest()[:16]


def texts_fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def encode(texts: list[str], tokenizer, max_len: int, *, memo: bool = True) -> EncodedSplit:
    """Tokenise `texts` (truncating to `max_len` tokens), memoised per (tokenizer, max_len, texts).

    `memo=False` neither reads nor fills the memo (chunks of a large corpus must not accumulate in memory).

    Example:
        >>> from textkd.data.tokenizers import build_wordpiece_tokenizer
        >>> tokenizer = build_wordpiece_tokenizer(["hello world"] * 3)
        >>> enc = encode(["hello world"], tokenizer, max_len=16)
        >>> tokenizer.convert_ids_to_tokens(enc.row(0))
        ['[CLS]', 'hello', 'world', '[SEP]']
    """
    key = f"{tokenizer_fingerprint(tokenizer)}-{max_len}-{texts_fingerprint(texts)}" if memo else ""
    if memo and key in _MEMO:
        return _MEMO[key]
    chunks: list[np.ndarray] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), _CHUNK):
        batch = tokenizer(texts[start : start + _CHUNK], truncation=True, max_length=max_len)["input_ids"]
        for j, ids in enumerate(batch):
            lengths[start + j] = len(ids)
            chunks.append(np.asarray(ids, dtype=np.int32))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = EncodedSplit(ids=ids, offsets=offsets, pad_token_id=int(pad), key=key)
    if memo:
        _MEMO[key] = encoded
    return encoded
