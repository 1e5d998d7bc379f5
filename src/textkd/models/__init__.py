"""Models: the BERT-style classifier (teachers, transformer students), the BiLSTM student, saving/loading.

Importing this package registers both model types with the transformers Auto classes, so a directory
saved by textkd loads with `AutoModelForSequenceClassification.from_pretrained(dir)` and
`pipeline("text-classification", model=dir)`.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from textkd.models.backbones import BACKBONES, build_teacher, own_tokenizer, resolve_backbone
from textkd.models.classifier import TextkdClassifier, TextkdClassifierConfig, masked_mean
from textkd.models.io import count_parameters, load_model, model_size_mb, read_marker, save_model
from textkd.models.outputs import ClassifierOutput
from textkd.models.students import (
    STUDENT_PRESETS,
    BiLSTMClassifier,
    BiLSTMConfig,
    StudentPreset,
    build_student,
    default_teacher_layers,
    get_student_preset,
)


def _register_auto_classes() -> None:
    for config_class, model_class in (
        (TextkdClassifierConfig, TextkdClassifier),
        (BiLSTMConfig, BiLSTMClassifier),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoModelForSequenceClassification.register(config_class, model_class, exist_ok=True)


_register_auto_classes()

__all__ = [
    "BACKBONES",
    "STUDENT_PRESETS",
    "BiLSTMClassifier",
    "BiLSTMConfig",
    "ClassifierOutput",
    "StudentPreset",
    "TextkdClassifier",
    "TextkdClassifierConfig",
    "build_student",
    "build_teacher",
    "count_parameters",
    "default_teacher_layers",
    "get_student_preset",
    "load_model",
    "masked_mean",
    "model_size_mb",
    "own_tokenizer",
    "read_marker",
    "resolve_backbone",
    "save_model",
]
