"""Shared fixtures: a tiny offline dataset, tokenizer, BERT backbone and teacher, and the real-data folder.

Session-scoped fixtures are shared by every test: do not train or modify `tiny_teacher` in place
(use `copy.deepcopy(tiny_teacher)`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerBase

from textkd.data.dataset import DatasetSplits, TextDataset
from textkd.data.tokenizers import build_wordpiece_tokenizer
from textkd.models.classifier import TextkdClassifier

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_LABELS = ["weather", "sports", "finance", "music"]
_TEMPLATES = {
    "weather": [
        "heavy rain is expected {when}",
        "the sky will be sunny {when}",
        "a cold storm arrives {when}",
        "strong wind and snow {when}",
        "the forecast says fog {when}",
    ],
    "sports": [
        "the team scored a late goal {when}",
        "our striker missed the penalty {when}",
        "the final match was won {when}",
        "the coach praised the players {when}",
        "a new record in tennis {when}",
    ],
    "finance": [
        "the stock market fell sharply {when}",
        "the bank raised interest rates {when}",
        "shares of the company rose {when}",
        "investors sold their bonds {when}",
        "the price of oil jumped {when}",
    ],
    "music": [
        "the band released a new album {when}",
        "she played the guitar on stage {when}",
        "the concert tickets sold out {when}",
        "a new song topped the charts {when}",
        "the orchestra performed {when}",
    ],
}
_WHEN = ["today", "this week"]


def _tiny_rows() -> tuple[list[str], np.ndarray]:
    """40 texts, 10 per label, interleaved so any prefix holds every label."""
    texts, labels = [], []
    for when in _WHEN:
        for i in range(5):
            for label_id, name in enumerate(TINY_LABELS):
                texts.append(_TEMPLATES[name][i].format(when=when))
                labels.append(label_id)
    return texts, np.asarray(labels, dtype=np.int64)


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    """40 short English texts (weather / sports / finance / music), always the same."""
    return _tiny_rows()[0]


@pytest.fixture(scope="session")
def tiny_labels() -> np.ndarray:
    """(40,) int64 label ids of `tiny_texts`, indices into `tiny_label_names`."""
    return _tiny_rows()[1]


@pytest.fixture(scope="session")
def tiny_label_names() -> list[str]:
    return list(TINY_LABELS)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_texts: list[str], tiny_labels: np.ndarray) -> TextDataset:
    return TextDataset(tiny_texts, tiny_labels, list(TINY_LABELS), source="tiny")


def tiny_splits_for_workers() -> DatasetSplits:
    """`tiny_splits` without pytest, for scripts the tests start in other processes (tests/ddp_worker.py)."""
    texts, labels = _tiny_rows()
    return _splits(TextDataset(texts, labels, list(TINY_LABELS), source="tiny"))


@pytest.fixture(scope="session")
def tiny_splits(tiny_dataset: TextDataset) -> DatasetSplits:
    """train = rows 0-23, validation = 24-31, test = 32-39 (each holds every label)."""
    return _splits(tiny_dataset)


def _splits(tiny_dataset: TextDataset) -> DatasetSplits:
    return DatasetSplits(
        name="tiny",
        train=tiny_dataset.subset(range(24), source="tiny/train"),
        validation=tiny_dataset.subset(range(24, 32), source="tiny/validation"),
        test=tiny_dataset.subset(range(32, 40), source="tiny/test"),
        language="en",
    )


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_texts: list[str]) -> PreTrainedTokenizerBase:
    """A WordPiece tokenizer learnt from `tiny_texts` (about 200 tokens)."""
    return build_wordpiece_tokenizer(tiny_texts, vocab_size=200)


TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerBase) -> Path:
    """A saved random BertModel (2 layers, hidden 32, 2 heads, FFN 64) + `tiny_tokenizer`: a backbone path."""
    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tiny_tokenizer), max_position_embeddings=128, **TINY_BERT)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher(tiny_bert_dir: Path) -> TextkdClassifier:
    """A `TextkdClassifier` (mean pooling, MLP head, 4 labels) on `tiny_bert_dir`, in eval mode."""
    torch.manual_seed(0)
    model = TextkdClassifier.from_backbone(str(tiny_bert_dir), num_labels=4, id2label=list(TINY_LABELS))
    model.config.textkd_role = "teacher"
    return model.eval()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets: $TEXTKD_DATA_DIR, else <repo>/../shared/data; skips when absent."""
    path = Path(os.environ.get("TEXTKD_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set TEXTKD_DATA_DIR)")
    return path
