"""Student presets and builders, by stable string keys.

A preset names a shape (`tinybert-4l-312`); its `type` names the builder that turns a `StudentConfig`
into a model and tokenizer (`transformer`, `bilstm`). Changed behaviour gets a new key, never a changed
preset, so results recorded under a key stay comparable.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from textkd.config import StudentConfig
from textkd.errors import ConfigError
from textkd.models.backbones import OWN_TOKENIZERS, own_tokenizer
from textkd.models.classifier import HEADS


@dataclass(frozen=True)
class StudentPreset:
    """A named student shape.

    Attributes:
        key: the stable name used in configs (`student.preset`).
        type: the builder that makes it ("transformer" | "bilstm").
        num_layers: encoder layers (transformer) or stacked LSTM layers (bilstm).
        hidden_size: transformer width, or LSTM hidden size per direction.
        num_heads: attention heads (transformer only).
        intermediate_size: feed-forward width (transformer only).
        embedding_dim: token embedding width (bilstm only).
        dropout: head dropout (transformer) or LSTM/head dropout (bilstm).
        pooling: how token vectors become the sentence vector.
        head: classification head ("linear" | "mlp").
        vocab_size: vocabulary size when the student learns its own tokenizer.
        max_len: recommended tokens per text, or None to use `data.max_len`.
        description: one line for `textkd` listings and reports.
    """

    key: str
    type: str
    num_layers: int
    hidden_size: int
    num_heads: int = 0
    intermediate_size: int = 0
    embedding_dim: int = 0
    dropout: float = 0.1
    pooling: str = "mean"
    head: str = "linear"
    vocab_size: int = 8000
    max_len: int | None = None
    description: str = ""


STUDENT_PRESETS: dict[str, StudentPreset] = {}

# A builder gets (cfg, preset, teacher_model, teacher_tokenizer, label_names, train_texts, language).
StudentBuilder = Callable[..., tuple[nn.Module, PreTrainedTokenizerBase]]
STUDENT_BUILDERS: dict[str, StudentBuilder] = {}
# Per student type: its name in messages and the poolings it has (every type has the heads in HEADS).
STUDENT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {}
STUDENT_TOKENIZERS = ("teacher", *OWN_TOKENIZERS)
EMBEDDING_INITS = ("random", "teacher")


def register_student_preset(preset: StudentPreset) -> StudentPreset:
    """Add a preset; a key may be registered once (changed behaviour gets a new key)."""
    if preset.key in STUDENT_PRESETS:
        raise ValueError(f"student preset {preset.key!r} is already registered")
    STUDENT_PRESETS[preset.key] = preset
    return preset


def register_student_type(
    name: str, *, label: str, poolings: Sequence[str]
) -> Callable[[StudentBuilder], StudentBuilder]:
    """Decorator registering the builder of a student `type`, its name in messages and the poolings it has."""

    def decorate(builder: StudentBuilder) -> StudentBuilder:
        STUDENT_BUILDERS[name] = builder
        STUDENT_KINDS[name] = (label, tuple(poolings))
        return builder

    return decorate


def get_student_preset(key: str) -> StudentPreset:
    """The preset registered under `key`.

    Example:
        >>> get_student_preset("bert-tiny-2l-128").hidden_size
        128
    """
    if key not in STUDENT_PRESETS:
        close = difflib.get_close_matches(key, list(STUDENT_PRESETS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(STUDENT_PRESETS)}"
        raise ConfigError(f"unknown student preset {key!r}", hint=hint)
    return STUDENT_PRESETS[key]


def check_student_config(cfg: StudentConfig) -> StudentPreset:
    """`cfg`'s preset, after refusing what `build_student` would refuse without a teacher or data: an unknown
    preset (with the closest one), and a tokenizer, embedding init, pooling or head its kind of student lacks.

    Example:
        >>> check_student_config(StudentConfig(preset="bilstn"))
        Traceback (most recent call last):
        textkd.errors.ConfigError: unknown student preset 'bilstn' — did you mean 'bilstm'?
    """
    preset = get_student_preset(cfg.preset)
    student_pooling_and_head(cfg, preset.type, preset.pooling, preset.head)
    if cfg.tokenizer not in STUDENT_TOKENIZERS:
        raise ConfigError(f"unknown student.tokenizer {cfg.tokenizer!r}", hint="use teacher, wordpiece or char")
    if cfg.embedding_init not in EMBEDDING_INITS:
        raise ConfigError(f"unknown student.embedding_init {cfg.embedding_init!r}", hint="use random or teacher")
    return preset


def build_student(
    cfg: StudentConfig,
    teacher_model: nn.Module | None,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    label_names: Sequence[str],
    train_texts: Sequence[str],
    language: str = "en",
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """The student model and tokenizer for `cfg` (randomly or teacher-initialised, see the builders).

    Example:
        >>> from textkd.config import StudentConfig
        >>> texts = ["rain today", "goal scored"] * 4
        >>> model, tok = build_student(StudentConfig(preset="bilstm", tokenizer="wordpiece"),
        ...                            None, None, ["weather", "sports"], texts)
        >>> model.config.num_labels
        2
    """
    preset = check_student_config(cfg)
    builder = STUDENT_BUILDERS[preset.type]
    model, tokenizer = builder(cfg, preset, teacher_model, teacher_tokenizer, label_names, train_texts, language)
    model.config.textkd_role = "student"
    model.config.textkd_preset = preset.key
    return model, tokenizer


def student_dropout(cfg: StudentConfig, default: float) -> float:
    """`cfg.dropout` where it is set, else `default` (the preset's, or the teacher's for a teacher-layers student).

    Example:
        >>> student_dropout(StudentConfig(), 0.2), student_dropout(StudentConfig(dropout=0.0), 0.2)
        (0.2, 0.0)
    """
    return default if cfg.dropout is None else cfg.dropout


def student_pooling_and_head(cfg: StudentConfig, kind: str, pooling: str, head: str) -> tuple[str, str]:
    """`cfg.pooling` and `cfg.head` where set, else `pooling` and `head` (the preset's, or the teacher's for a
    teacher-layers student); refuses one that a student of type `kind` does not have.

    Example:
        >>> student_pooling_and_head(StudentConfig(pooling="max"), "bilstm", "mean", "linear")
        ('max', 'linear')
    """
    label, poolings = STUDENT_KINDS[kind]

    def choose(key: str, default: str, allowed: Sequence[str]) -> str:
        value = getattr(cfg, key)
        if value is not None and value not in allowed:
            raise ConfigError(
                f"student.{key} {value!r} is not a {label} student's {key}",
                hint=f"use one of {', '.join(allowed)}, or leave it unset for the preset's",
            )
        return default if value is None else value

    return choose("pooling", pooling, poolings), choose("head", head, HEADS)


def student_tokenizer(
    cfg: StudentConfig,
    preset: StudentPreset,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    train_texts: Sequence[str],
    language: str = "en",
) -> PreTrainedTokenizerBase:
    """The teacher's tokenizer (`cfg.tokenizer == "teacher"`) or one learnt from `train_texts`.

    Example:
        >>> from textkd.config import StudentConfig
        >>> cfg = StudentConfig(preset="bilstm", tokenizer="char")
        >>> student_tokenizer(cfg, get_student_preset("bilstm"), None, ["天气很好"] * 2).tokenize("天气")
        ['天', '气']
    """
    if cfg.tokenizer == "teacher":
        if teacher_tokenizer is None:
            raise ConfigError(
                "student.tokenizer is 'teacher' but there is no teacher tokenizer",
                hint="set student.tokenizer to wordpiece or char",
            )
        return teacher_tokenizer
    return own_tokenizer(cfg.tokenizer, train_texts, preset.vocab_size, language)


for _preset in (
    StudentPreset(
        key="tinybert-4l-312",
        type="transformer",
        num_layers=4,
        hidden_size=312,
        num_heads=12,
        intermediate_size=1200,
        description="TinyBERT-4 shape: 4 layers, hidden 312, 12 heads, FFN 1200",
    ),
    StudentPreset(
        key="bert-mini-4l-256",
        type="transformer",
        num_layers=4,
        hidden_size=256,
        num_heads=4,
        intermediate_size=1024,
        description="BERT-mini (Turc et al. 2019): 4 layers, hidden 256, 4 heads",
    ),
    StudentPreset(
        key="bert-tiny-2l-128",
        type="transformer",
        num_layers=2,
        hidden_size=128,
        num_heads=2,
        intermediate_size=512,
        description="BERT-tiny (Turc et al. 2019): 2 layers, hidden 128, 2 heads",
    ),
    StudentPreset(
        key="bilstm",
        type="bilstm",
        num_layers=2,
        hidden_size=300,
        embedding_dim=300,
        dropout=0.2,
        description="BiLSTM (Tang et al. 2019 style): embedding 300, 2x300 bidirectional, masked mean pool",
    ),
    StudentPreset(
        key="bilstm-zh",
        type="bilstm",
        num_layers=4,
        hidden_size=512,
        embedding_dim=256,
        dropout=0.3,
        max_len=32,
        description="the Chinese tutorial's BiLSTM: embedding 256, 4x512 bidirectional, max_len 32",
    ),
):
    register_student_preset(_preset)
