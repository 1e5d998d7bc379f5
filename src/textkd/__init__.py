"""textkd: distil a large fine-tuned text classifier into a small fast one, and prove the trade.

Importing textkd registers its model classes with the transformers Auto classes, so a saved textkd model
loads with `AutoModelForSequenceClassification.from_pretrained(dir)` and `pipeline("text-classification")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textkd import models as _models  # noqa: F401  (registers the Auto classes)
from textkd.errors import ConfigError, DataError, HubError, ModelLoadError, TextkdError

if TYPE_CHECKING:
    from textkd.api import (
        TrainResult,
        distill,
        evaluate,
        evaluate_file,
        label,
        load_data,
        predict,
        train_teacher,
        write_predictions,
    )
    from textkd.config import (
        Config,
        DataConfig,
        DistillConfig,
        RunConfig,
        StudentConfig,
        TeacherConfig,
        TrainConfig,
        load_config,
        save_config,
    )
    from textkd.data.dataset import DatasetSplits, TextDataset
    from textkd.evaluation.card import write_model_card
    from textkd.hub import push_to_hub
    from textkd.models.outputs import ClassifierOutput
    from textkd.pipeline import run
    from textkd.predictor import Predictor
    from textkd.seeds import SeedsResult, distill_seeds

# Public names resolve on first use, so `import textkd` stays cheap (the CLI imports what it needs).
_LAZY = {
    "textkd.api": (
        "TrainResult",
        "distill",
        "evaluate",
        "evaluate_file",
        "label",
        "load_data",
        "predict",
        "train_teacher",
        "write_predictions",
    ),
    "textkd.config": (
        "Config",
        "DataConfig",
        "DistillConfig",
        "RunConfig",
        "StudentConfig",
        "TeacherConfig",
        "TrainConfig",
        "load_config",
        "save_config",
    ),
    "textkd.data.dataset": ("DatasetSplits", "TextDataset"),
    "textkd.evaluation.card": ("write_model_card",),
    "textkd.hub": ("push_to_hub",),
    "textkd.models.outputs": ("ClassifierOutput",),
    "textkd.pipeline": ("run",),
    "textkd.predictor": ("Predictor",),
    "textkd.seeds": ("SeedsResult", "distill_seeds"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'textkd' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ClassifierOutput",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DatasetSplits",
    "DistillConfig",
    "HubError",
    "ModelLoadError",
    "Predictor",
    "RunConfig",
    "SeedsResult",
    "StudentConfig",
    "TeacherConfig",
    "TextDataset",
    "TextkdError",
    "TrainConfig",
    "TrainResult",
    "distill",
    "distill_seeds",
    "evaluate",
    "evaluate_file",
    "label",
    "load_config",
    "load_data",
    "predict",
    "push_to_hub",
    "run",
    "save_config",
    "train_teacher",
    "write_model_card",
    "write_predictions",
]
