"""Transformer students: a smaller `TextkdClassifier`, random, cut from the teacher, or from a checkpoint.

`student.init` picks how the weights start:
- "random": a fresh BERT of the preset's shape.
- "teacher-layers": the teacher's embeddings, a subset of its layers and its head (DistilBERT's
  initialisation, Sanh et al. 2019). The student takes the teacher's width, heads, FFN, pooling and
  head type, so every copied tensor fits. Default layers: every other one from the bottom,
  `default_teacher_layers` (6 -> [0, 2, 4], 12 -> [0, 2, ..., 10], as DistilBERT).
- a local path, short backbone name or hub id: that checkpoint's BERT weights and its own tokenizer
  (e.g. huawei-noah/TinyBERT_General_4L_312D where the hub is reachable).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from textkd.config import StudentConfig
from textkd.errors import ConfigError
from textkd.models.backbones import load_error, load_tokenizer, resolve_backbone, scratch_bert_config
from textkd.models.classifier import POOLINGS, TextkdClassifier
from textkd.models.students.registry import (
    StudentPreset,
    register_student_type,
    student_dropout,
    student_pooling_and_head,
    student_tokenizer,
)


def _head_settings(cfg: StudentConfig, pooling: str, head: str, dropout: float) -> dict[str, Any]:
    """The pooling, head and head dropout for `TextkdClassifier`: the student config's where set, else these."""
    pooling, head = student_pooling_and_head(cfg, "transformer", pooling, head)
    return {
        "pooling": pooling,
        "head": head,
        "dropout": student_dropout(cfg, dropout),
    }


@register_student_type("transformer", label="transformer", poolings=POOLINGS)
def build_transformer_student(
    cfg: StudentConfig,
    preset: StudentPreset,
    teacher_model: nn.Module | None,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    label_names: Sequence[str],
    train_texts: Sequence[str],
    language: str = "en",
) -> tuple[TextkdClassifier, PreTrainedTokenizerBase]:
    """A transformer student for `cfg.init` (see the module docstring), with `cfg.encoder_dropout` applied."""
    if cfg.init == "random":
        tokenizer = student_tokenizer(cfg, preset, teacher_tokenizer, train_texts, language)
        model = random_student(cfg, preset, tokenizer, label_names)
    elif cfg.init == "teacher-layers":
        if teacher_tokenizer is None or cfg.tokenizer != "teacher":
            raise ConfigError(
                "student.init 'teacher-layers' copies the teacher's embeddings, so it needs the teacher's tokenizer",
                hint="set student.tokenizer to teacher",
            )
        model, tokenizer = teacher_layers_student(cfg, teacher_model, label_names), teacher_tokenizer
    else:
        model, tokenizer = checkpoint_student(cfg, preset, label_names)
    if cfg.encoder_dropout is not None:
        set_encoder_dropout(model, cfg.encoder_dropout)
    return model, tokenizer


def set_encoder_dropout(model: TextkdClassifier, p: float) -> None:
    """Set the encoder's hidden-state and attention dropout to `p`, in its config and every dropout layer.

    The config keeps the value, so a saved student loads with it.

    Example:
        >>> model = TextkdClassifier.from_scratch({"hidden_size": 32, "num_hidden_layers": 1,
        ...     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 50}, 2)
        >>> set_encoder_dropout(model, 0.3)
        >>> {m.p for m in model.encoder.modules() if isinstance(m, nn.Dropout)}
        {0.3}
    """
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"student.encoder_dropout must be in [0, 1), got {p}")
    model.config.encoder.hidden_dropout_prob = p
    model.config.encoder.attention_probs_dropout_prob = p
    for module in model.encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def random_student(
    cfg: StudentConfig, preset: StudentPreset, tokenizer: PreTrainedTokenizerBase, label_names: Sequence[str]
) -> TextkdClassifier:
    """A randomly initialised student of `preset`'s shape; `cfg.num_layers` / `cfg.hidden_size` override it.

    A changed width keeps the preset's FFN-to-width ratio.

    Example:
        >>> from textkd.data.tokenizers import build_wordpiece_tokenizer
        >>> from textkd.models.students.registry import get_student_preset
        >>> tok = build_wordpiece_tokenizer(["a b c"] * 3)
        >>> model = random_student(StudentConfig(), get_student_preset("bert-tiny-2l-128"), tok, ["x", "y"])
        >>> model.config.encoder.hidden_size
        128
    """
    hidden = cfg.hidden_size or preset.hidden_size
    intermediate = preset.intermediate_size * hidden // preset.hidden_size
    encoder = scratch_bert_config(
        tokenizer, cfg.num_layers or preset.num_layers, hidden, preset.num_heads, intermediate
    )
    return TextkdClassifier.from_scratch(
        encoder,
        len(label_names),
        list(label_names),
        **_head_settings(cfg, preset.pooling, preset.head, preset.dropout),
    )


def default_teacher_layers(teacher_num_layers: int, student_num_layers: int | None = None) -> list[int]:
    """Evenly spaced teacher layers from the bottom: layer i * T // S for student layer i.

    With S = T // 2 (the default) this is every other layer, as DistilBERT.

    Example:
        >>> default_teacher_layers(6)
        [0, 2, 4]
        >>> default_teacher_layers(12, 4)
        [0, 3, 6, 9]
    """
    student_num_layers = student_num_layers or max(1, teacher_num_layers // 2)
    if not 1 <= student_num_layers <= teacher_num_layers:
        raise ConfigError(
            f"a student cut from a {teacher_num_layers}-layer teacher needs 1..{teacher_num_layers} layers, "
            f"got {student_num_layers}"
        )
    return [i * teacher_num_layers // student_num_layers for i in range(student_num_layers)]


def teacher_layers_student(
    cfg: StudentConfig, teacher_model: nn.Module | None, label_names: Sequence[str]
) -> TextkdClassifier:
    """A student made of the teacher's embeddings, `cfg.teacher_layers` (or the default) and its head.

    Example:
        >>> teacher = TextkdClassifier.from_scratch({"hidden_size": 32, "num_hidden_layers": 4,
        ...     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 50}, 2)
        >>> student = teacher_layers_student(StudentConfig(init="teacher-layers"), teacher, ["a", "b"])
        >>> student.config.encoder.num_hidden_layers
        2
    """
    if not isinstance(teacher_model, TextkdClassifier):
        raise ConfigError("student.init 'teacher-layers' needs a BERT-style teacher (TextkdClassifier)")
    teacher_encoder = teacher_model.config.encoder
    if cfg.hidden_size is not None and cfg.hidden_size != teacher_encoder.hidden_size:
        raise ConfigError(
            f"student.init 'teacher-layers' needs the teacher's width: student hidden_size {cfg.hidden_size} "
            f"!= teacher hidden_size {teacher_encoder.hidden_size}",
            hint="drop student.hidden_size or use student.init random",
        )
    layers = _chosen_layers(cfg, teacher_encoder.num_hidden_layers)
    encoder = copy.deepcopy(teacher_encoder)
    encoder.num_hidden_layers = len(layers)
    teacher_config = teacher_model.config
    student = TextkdClassifier.from_scratch(
        encoder,
        len(label_names),
        list(label_names),
        **_head_settings(cfg, teacher_config.pooling, teacher_config.head, teacher_config.head_dropout),
    )
    student.encoder.embeddings.load_state_dict(teacher_model.encoder.embeddings.state_dict())
    for student_index, teacher_index in enumerate(layers):
        teacher_layer = teacher_model.encoder.encoder.layer[teacher_index]
        student.encoder.encoder.layer[student_index].load_state_dict(teacher_layer.state_dict())
    if _same_shapes(student.head, teacher_model.head):
        student.head.load_state_dict(teacher_model.head.state_dict())
    student.config.textkd_teacher_layers = layers
    return student


def _chosen_layers(cfg: StudentConfig, teacher_num_layers: int) -> list[int]:
    if cfg.teacher_layers is None:
        return default_teacher_layers(teacher_num_layers, cfg.num_layers)
    layers = list(cfg.teacher_layers)
    bad = [i for i in layers if not 0 <= i < teacher_num_layers]
    if bad or not layers:
        raise ConfigError(
            f"student.teacher_layers {layers} must be indices 0..{teacher_num_layers - 1} of the teacher's layers"
        )
    if cfg.num_layers is not None and cfg.num_layers != len(layers):
        raise ConfigError(
            f"student.num_layers {cfg.num_layers} != {len(layers)} student.teacher_layers {layers}",
            hint="drop student.num_layers; the layer list sets the depth",
        )
    return layers


def _same_shapes(student_module: nn.Module, teacher_module: nn.Module) -> bool:
    student_state, teacher_state = student_module.state_dict(), teacher_module.state_dict()
    return student_state.keys() == teacher_state.keys() and all(
        student_state[k].shape == teacher_state[k].shape for k in student_state
    )


def checkpoint_student(
    cfg: StudentConfig, preset: StudentPreset, label_names: Sequence[str]
) -> tuple[TextkdClassifier, PreTrainedTokenizerBase]:
    """A student whose encoder starts from the BERT checkpoint `cfg.init`, with that checkpoint's tokenizer.

    The checkpoint fixes the shape, so `cfg.num_layers` / `cfg.hidden_size` must be unset, and its
    vocabulary fixes the tokenizer, so `cfg.tokenizer` must be "teacher" (the default).
    """
    if cfg.num_layers is not None or cfg.hidden_size is not None:
        raise ConfigError(
            f"student.init {cfg.init!r} is a checkpoint, whose shape is fixed",
            hint="drop student.num_layers / student.hidden_size",
        )
    if cfg.tokenizer != "teacher":
        raise ConfigError(
            f"student.init {cfg.init!r} brings its own tokenizer; student.tokenizer {cfg.tokenizer!r} cannot apply",
            hint="leave student.tokenizer at its default",
        )
    path = resolve_backbone(cfg.init)
    try:
        model = TextkdClassifier.from_backbone(
            path,
            len(label_names),
            list(label_names),
            **_head_settings(cfg, preset.pooling, preset.head, preset.dropout),
        )
    except (OSError, ValueError, KeyError) as err:
        raise load_error(path, err) from None
    return model, load_tokenizer(path)
