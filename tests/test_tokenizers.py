from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from textkd.data.tokenizers import SPECIAL_TOKENS, build_char_tokenizer, build_wordpiece_tokenizer

ZH_TEXTS = ["苹果iPhone 15发布了", "iPhone 15 价格很高", "华为发布新手机", "今天天气很好", "手机价格下降了"]


def test_wordpiece_special_tokens_come_first(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tiny_tokenizer.pad_token_id == 0
    assert len(tiny_tokenizer) <= 200


def test_wordpiece_tokenizes_known_words_whole_and_unknown_into_pieces(tiny_tokenizer):
    assert tiny_tokenizer.tokenize("The TODAY") == ["the", "today"]
    assert tiny_tokenizer.tokenize("todays") == ["today", "##s"]
    ids = tiny_tokenizer("heavy rain")["input_ids"]
    assert ids[0] == tiny_tokenizer.cls_token_id and ids[-1] == tiny_tokenizer.sep_token_id


def test_wordpiece_is_deterministic(tiny_texts):
    first = build_wordpiece_tokenizer(tiny_texts, vocab_size=120)
    second = build_wordpiece_tokenizer(list(tiny_texts), vocab_size=120)
    assert first.get_vocab() == second.get_vocab()


@pytest.mark.slow
def test_wordpiece_is_deterministic_across_processes(tiny_texts):
    # tokenizers' own trainer breaks ties in hash-map order, which changes per process.
    code = (
        "import sys, json; from textkd.data.tokenizers import build_wordpiece_tokenizer;"
        "texts = json.loads(sys.stdin.read());"
        "print(json.dumps(sorted(build_wordpiece_tokenizer(texts, vocab_size=120).get_vocab().items())))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(tiny_texts),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1


def test_char_tokenizer_splits_cjk_and_keeps_other_words_whole():
    tokenizer = build_char_tokenizer(ZH_TEXTS)
    assert tokenizer.tokenize("苹果iPhone 15发布了") == ["苹", "果", "iphone", "15", "发", "布", "了"]


def test_char_tokenizer_falls_back_for_rare_words():
    tokenizer = build_char_tokenizer(ZH_TEXTS)
    assert tokenizer.tokenize("155") == ["15", "##5"]  # rare word -> known pieces
    assert tokenizer.tokenize("iPhone 16") == ["iphone", "[UNK]"]  # "##6" never seen


def test_char_tokenizer_is_deterministic_and_respects_vocab_size():
    assert build_char_tokenizer(ZH_TEXTS).get_vocab() == build_char_tokenizer(list(ZH_TEXTS)).get_vocab()
    assert len(build_char_tokenizer(ZH_TEXTS, vocab_size=12)) == 12


@pytest.mark.parametrize("builder", [build_wordpiece_tokenizer, build_char_tokenizer])
def test_tokenizers_round_trip_through_auto_tokenizer(builder, tmp_path, tiny_texts):
    texts = tiny_texts + ZH_TEXTS
    tokenizer = builder(texts, vocab_size=300)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    for text in texts[:5] + ZH_TEXTS:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
