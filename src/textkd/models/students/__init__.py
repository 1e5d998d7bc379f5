"""Student architectures by registry key: transformer (smaller BERT) and bilstm.

Importing this package registers the builders of both student types with `STUDENT_BUILDERS`.
"""

from __future__ import annotations

from textkd.models.students.bilstm import (
    BiLSTMClassifier,
    BiLSTMConfig,
    build_bilstm_student,
    teacher_embedding_matrix,
)
from textkd.models.students.registry import (
    STUDENT_BUILDERS,
    STUDENT_PRESETS,
    StudentPreset,
    build_student,
    get_student_preset,
    register_student_preset,
    register_student_type,
    student_tokenizer,
)
from textkd.models.students.transformer import (
    build_transformer_student,
    checkpoint_student,
    default_teacher_layers,
    random_student,
    teacher_layers_student,
)

__all__ = [
    "STUDENT_BUILDERS",
    "STUDENT_PRESETS",
    "BiLSTMClassifier",
    "BiLSTMConfig",
    "StudentPreset",
    "build_bilstm_student",
    "build_student",
    "build_transformer_student",
    "checkpoint_student",
    "default_teacher_layers",
    "get_student_preset",
    "random_student",
    "register_student_preset",
    "register_student_type",
    "student_tokenizer",
    "teacher_embedding_matrix",
    "teacher_layers_student",
]
