"""Tokenizers built from a dataset's training texts, for teachers and students trained from scratch.

Both builders return a `BertTokenizerFast` (BERT normalisation and pre-tokenisation, WordPiece model), so
they save with `save_pretrained`, load with `AutoTokenizer.from_pretrained`, and feed any BERT encoder.

The vocabularies are learnt here in Python rather than with `tokenizers`' `WordPieceTrainer`: that trainer
breaks ties between equally frequent merges in hash-map order, which changes between processes, so the
same texts could give different vocabularies (and different token ids) on two runs. Here every tie is
broken by the token strings, so the same texts always give the same vocabulary.
"""

from __future__ import annotations

import functools
import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0, as BERT's pad_token_id
MODEL_MAX_LENGTH = 512  # BERT's position table; texts are truncated to DataConfig.max_len anyway


def build_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, lowercase: bool = True, min_frequency: int = 2
) -> BertTokenizerFast:
    """A BERT tokenizer whose WordPiece vocabulary is learnt from `texts`.

    Merges (BPE-style, as `tokenizers`' WordPiece trainer) join the most frequent adjacent pair of pieces
    until the vocabulary holds `vocab_size` tokens; a pair is merged only if it occurs `min_frequency` times.

    Example:
        >>> tok = build_wordpiece_tokenizer(["the rain falls", "the rain stops"] * 5, vocab_size=60)
        >>> tok.tokenize("The rain")
        ['the', 'rain']
    """
    word_counts = Counter(word for text in texts for word in _pretokenize(text, lowercase))
    budget = max(vocab_size - len(SPECIAL_TOKENS), 1)
    tokens = _learn_wordpiece(word_counts, budget, min_frequency)
    return _bert_tokenizer(tokens, lowercase)


def build_char_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, lowercase: bool = True, min_word_frequency: int = 2
) -> BertTokenizerFast:
    """A BERT-Chinese style tokenizer: one token per CJK character, other words whole when frequent.

    BERT's normaliser puts spaces around every CJK character, so each becomes its own token. Words of other
    scripts (latin, digits) stay whole when they occur `min_word_frequency` times; rarer ones fall back to
    single-character pieces (`i`, `##p`, ...) or `[UNK]`. Tokens are ranked by frequency, ties by string.

    Example:
        >>> tok = build_char_tokenizer(["苹果iPhone 15发布了", "iPhone 15 很好"])
        >>> tok.tokenize("苹果iPhone 15发布了")
        ['苹', '果', 'iphone', '15', '发', '布', '了']
    """
    chars: Counter[str] = Counter()
    continuations: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for text in texts:
        for piece in _pretokenize(text, lowercase):
            chars[piece[0]] += 1
            continuations.update("##" + c for c in piece[1:])
            if len(piece) > 1:
                words[piece] += 1
    frequent_words = Counter({w: n for w, n in words.items() if n >= min_word_frequency})
    # Single characters first (every CJK text needs them), then continuation pieces, then whole words.
    tokens = _by_frequency(chars) + _by_frequency(continuations) + _by_frequency(frequent_words)
    return _bert_tokenizer(tokens[: max(vocab_size - len(SPECIAL_TOKENS), 1)], lowercase)


def _pretokenize(text: str, lowercase: bool) -> list[str]:
    """The words BERT's tokenizer would see: normalised, CJK characters split, punctuation split."""
    normalizer, pre_tokenizer = _bert_pipeline(lowercase)
    return [word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]


@functools.cache
def _bert_pipeline(lowercase: bool) -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    return normalizer, pre_tokenizers.BertPreTokenizer()


def _by_frequency(counts: Counter[str]) -> list[str]:
    return [token for token, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _learn_wordpiece(word_counts: Counter[str], budget: int, min_frequency: int) -> list[str]:
    """Alphabet plus merged pieces, in the order they were learnt (ties broken by the pieces' strings)."""
    words = [[w[0], *("##" + c for c in w[1:])] for w in sorted(word_counts)]
    counts = [word_counts[w] for w in sorted(word_counts)]
    alphabet: Counter[str] = Counter()
    pair_counts: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, symbols in enumerate(words):
        for symbol in symbols:
            alphabet[symbol] += counts[i]
        for pair in zip(symbols, symbols[1:], strict=False):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    tokens = _by_frequency(alphabet)[:budget]
    known = set(tokens)
    heap = [(-n, a, b) for (a, b), n in pair_counts.items()]
    heapq.heapify(heap)
    while heap and len(tokens) < budget:
        neg_count, a, b = heapq.heappop(heap)
        if pair_counts[(a, b)] != -neg_count:
            continue  # a stale entry: this pair's count changed after it was pushed
        if -neg_count < min_frequency:
            break
        merged = a + b[2:]  # b is never word-initial, so it carries the "##" prefix
        if merged not in known:
            tokens.append(merged)
            known.add(merged)
        changed = _apply_merge(words, counts, (a, b), merged, pair_counts, where)
        for pair in sorted(changed):
            heapq.heappush(heap, (-pair_counts[pair], *pair))
    return tokens


def _apply_merge(
    words: list[list[str]],
    counts: list[int],
    pair: tuple[str, str],
    merged: str,
    pair_counts: Counter[tuple[str, str]],
    where: defaultdict[tuple[str, str], set[int]],
) -> set[tuple[str, str]]:
    """Merge `pair` in every word holding it; update pair counts; return the pairs whose count changed."""
    changed: set[tuple[str, str]] = set()
    for i in sorted(where.pop(pair, ())):
        old = words[i]
        new: list[str] = []
        j = 0
        while j < len(old):
            if j + 1 < len(old) and (old[j], old[j + 1]) == pair:
                new.append(merged)
                j += 2
            else:
                new.append(old[j])
                j += 1
        if len(new) == len(old):
            continue
        for p in zip(old, old[1:], strict=False):
            pair_counts[p] -= counts[i]
            changed.add(p)
        for p in zip(new, new[1:], strict=False):
            pair_counts[p] += counts[i]
            where[p].add(i)
            changed.add(p)
        words[i] = new
    changed.discard(pair)
    pair_counts.pop(pair, None)
    return changed


def _bert_tokenizer(tokens: list[str], lowercase: bool) -> BertTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return BertTokenizerFast(
        vocab=vocab, do_lower_case=lowercase, tokenize_chinese_chars=True, model_max_length=MODEL_MAX_LENGTH
    )
