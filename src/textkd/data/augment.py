"""Transfer-set augmentation for distillation (Tang et al. 2019, "Distilling Task-Specific Knowledge from
BERT into Simple Neural Networks", arXiv:1903.12136, section 3.3).

Each training text yields N new texts. For every word, with probability `p_mask` it becomes the mask token,
else with probability `p_replace` it becomes one of its nearest neighbours in the teacher's input-embedding
space (the paper swaps a word for another of the same part of speech; embedding neighbours need no tagger);
then with probability `p_ngram` only a random n-gram (n in 1..`max_ngram`) of the result is kept. The
teacher labels the new texts (soft targets) like any other transfer-set row; they have no gold label.

Words are whitespace-separated runs, and each CJK character is a word of its own, so Chinese texts are
augmented character by character. A word's leading and trailing punctuation stays where it is when the word is
replaced ("card?" -> "cards?"). Everything is a pure function of (seed, text index, copy index).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from textkd.errors import ConfigError

_WORDS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)  # leading punctuation, the word, trailing punctuation

# Bumped whenever the same (texts, copies, seed, settings) would give different augmented texts, so a cached
# transfer set written by an older textkd is not reused. 2: punctuation-aware replacement.
AUGMENT_VERSION = 2


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities of Tang et al. (2019); their defaults: p_mask = p_replace = 0.1, p_ngram = 0.25."""

    p_mask: float = 0.1
    p_replace: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    neighbours: int = 10  # candidates per word for replacement

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_replace", "p_ngram"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"augmentation {name} must be in [0, 1], got {value}")
        if self.p_mask + self.p_replace > 1.0:
            raise ConfigError(f"p_mask + p_replace must be <= 1, got {self.p_mask + self.p_replace}")
        if self.max_ngram < 1 or self.neighbours < 1:
            raise ConfigError("max_ngram and neighbours must be >= 1")


def split_words(text: str) -> list[str]:
    """Words of a text: whitespace-separated runs, each CJK character on its own.

    Example:
        >>> split_words("苹果iPhone 15发布")
        ['苹', '果', 'iPhone', '15', '发', '布']
    """
    return _WORDS.findall(text)


def join_words(words: Sequence[str]) -> str:
    """The inverse of `split_words` up to whitespace: spaces between two non-CJK words only.

    Example:
        >>> join_words(['苹', '果', 'iPhone', '15', '发', '布'])
        '苹果iPhone 15发布'
    """
    out: list[str] = []
    for word in words:
        if out and not _CJK.fullmatch(word) and not _CJK.fullmatch(out[-1]):
            out.append(" ")
        out.append(word)
    return "".join(out)


def core_word(word: str) -> tuple[str, str, str]:
    """A word split into (leading punctuation, the word itself, trailing punctuation).

    Example:
        >>> core_word('"card?"')
        ('"', 'card', '?"')
    """
    match = _EDGES.match(word)
    assert match is not None  # the pattern matches every string
    return match.group(1), match.group(2), match.group(3)


def augment_text(
    words: Sequence[str],
    rng: np.random.Generator,
    settings: AugmentSettings,
    neighbours: dict[str, list[str]],
    mask_token: str,
) -> list[str]:
    """One augmented copy of `words` (see the module docstring for the three operations)."""
    out = []
    for word in words:
        u = rng.random()
        if u < settings.p_mask:
            out.append(mask_token)
        elif u < settings.p_mask + settings.p_replace:
            lead, core, trail = core_word(word)
            candidates = neighbours.get(core.lower())
            out.append(lead + candidates[int(rng.integers(len(candidates)))] + trail if candidates else word)
        else:
            out.append(word)
    if len(out) > 1 and rng.random() < settings.p_ngram:
        n = int(rng.integers(1, min(settings.max_ngram, len(out)) + 1))
        start = int(rng.integers(0, len(out) - n + 1))
        out = out[start : start + n]
    return out


def augment_texts(
    texts: Sequence[str],
    copies: int,
    *,
    seed: int,
    settings: AugmentSettings | None = None,
    neighbours: dict[str, list[str]] | None = None,
    mask_token: str = "[MASK]",
) -> Iterator[str]:
    """`copies` augmented versions of every text, in order (text 0's copies first). Deterministic per seed.

    A copy identical to its source, or empty, is redrawn (up to 10 times) so the transfer set grows.

    Example:
        >>> list(augment_texts(["the rain falls today"], 2, seed=0, settings=AugmentSettings(p_mask=0.5)))
        ['the [MASK] [MASK] [MASK]', '[MASK]']
    """
    settings = settings or AugmentSettings()
    neighbours = neighbours or {}
    for i, text in enumerate(texts):
        words = split_words(text)
        source = join_words(words)  # the text with normalised spacing
        for j in range(copies):
            rng = np.random.default_rng([seed, i, j])
            candidate = source
            for _ in range(10):
                candidate = join_words(augment_text(words, rng, settings, neighbours, mask_token))
                if candidate.strip() and candidate != source:
                    break
            yield candidate if candidate.strip() else source


def embedding_neighbours(
    teacher, tokenizer, words: set[str], k: int = 10, *, batch: int = 1024
) -> dict[str, list[str]]:
    """For each word that is a single token of the teacher's vocabulary, its `k` nearest whole-word tokens
    by cosine similarity of the teacher's input embeddings (itself and special/sub-word tokens excluded).

    Example:
        >>> embedding_neighbours(teacher, tokenizer, {"card", "transfer"}, k=3)  # doctest: +SKIP
        {'card': ['cards', 'credit', 'debit'], 'transfer': ['transfers', 'transferred', 'send']}
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    pool = sorted(
        (tok, idx)
        for tok, idx in vocab.items()
        if tok not in special and not tok.startswith("##") and not tok.startswith("[unused")
    )
    if not pool:
        return {}
    pool_tokens = [tok for tok, _ in pool]
    table = _input_embeddings(teacher)
    pool_vectors = torch.nn.functional.normalize(table[torch.tensor([idx for _, idx in pool])].float(), dim=-1)
    queries = sorted(w for w in {w.lower() for w in words} if w in vocab and w not in special)
    out: dict[str, list[str]] = {}
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        vectors = torch.nn.functional.normalize(table[torch.tensor([vocab[w] for w in chunk])].float(), dim=-1)
        scores = vectors @ pool_vectors.T  # (q, P)
        top = scores.topk(min(k + 1, len(pool_tokens)), dim=-1).indices
        for word, row in zip(chunk, top.tolist(), strict=True):
            out[word] = [pool_tokens[i] for i in row if pool_tokens[i] != word][:k]
    return out


def _input_embeddings(model) -> torch.Tensor:
    getter = getattr(model, "get_input_embeddings", None)
    layer = getter() if getter is not None else None
    if layer is None:
        raise ConfigError("the teacher has no input embeddings to find replacement words in")
    return layer.weight.detach().cpu()


def write_augmented(
    texts: Sequence[str],
    copies: int,
    path: str | Path,
    *,
    seed: int,
    teacher=None,
    tokenizer=None,
    settings: AugmentSettings | None = None,
) -> Path:
    """Write `copies` augmented texts per text to `path` (one per line), with embedding-neighbour
    replacement when a teacher and tokenizer are given; returns the path. Newlines inside texts become
    spaces so every text stays one line.
    """
    settings = settings or AugmentSettings()
    neighbours: dict[str, list[str]] = {}
    mask = "[MASK]"
    if teacher is not None and tokenizer is not None:
        words = {core_word(w)[1] for text in texts for w in split_words(text)}
        neighbours = embedding_neighbours(teacher, tokenizer, words, settings.neighbours)
        mask = tokenizer.mask_token or mask
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for text in augment_texts(texts, copies, seed=seed, settings=settings, neighbours=neighbours, mask_token=mask):
            handle.write(" ".join(text.split()) + "\n")
    tmp.replace(path)
    return path
