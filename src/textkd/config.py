"""Typed configuration: dataclasses with documented defaults, YAML overrides, dotted CLI overrides.

A recipe file holds only the values that differ from the defaults below. Overrides are applied in order
defaults -> recipe YAML -> dotted CLI options (`--teacher.train.lr 1e-4`), and the resolved config is
written as `config.yaml` into every run directory so a run can be repeated exactly.

Example:
    >>> cfg = load_config(overrides={"teacher.train.lr": "1e-4", "data.name": "banking77"})
    >>> cfg.teacher.train.lr
    0.0001
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textkd.errors import ConfigError


@dataclass
class DataConfig:
    """Where the examples come from and how they are split and tokenised."""

    name: str = "bbc-news"  # a preset (`textkd data list`) or "files" for train/validation/test paths
    data_dir: str | None = None  # folder holding `<preset>/...`; default $TEXTKD_DATA_DIR, then download
    variant: str | None = None  # preset variant, e.g. clinc150: full | small | imbalanced | plus
    train: str | None = None  # with name="files": path of the training file
    validation: str | None = None  # optional; carved from train when absent
    test: str | None = None  # with name="files": path of the test file
    format: str | None = None  # csv | tsv | jsonl | json; guessed from the extension when None
    text_column: str = "text"  # column (or JSON key) holding the text; for header-less TSV an index
    label_column: str = "label"  # column holding the label (a name or an integer id)
    label_file: str | None = None  # optional label list: one name per line, or a JSON list
    has_header: bool | None = None  # TSV/CSV: None guesses (header-less `text<TAB>label` is THUCNews style)
    validation_fraction: float = 0.1  # share of train carved out as validation when a split has none
    split_seed: int = 42  # seed of every carved split; fixed so runs compare on the same rows
    empty_texts: str = "drop"  # drop (with a warning) | error
    max_len: int = 128  # tokens per text after truncation


@dataclass
class TrainConfig:
    """One training run of any model: the optimiser, schedule, selection and hardware settings."""

    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 256
    lr: float = 1e-4  # peak learning rate of AdamW (the tutorial's 2e-5 under-trains MiniLM on banking77)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of optimiser steps with linear warm-up; then linear decay to 0
    grad_accum: int = 1  # optimiser step every N batches
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables
    # Exponential moving average of the weights, evaluated and saved in their place (0 disables; 0.999
    # averages over ~1,000 optimiser steps). Steadies small students trained from scratch.
    ema_decay: float = 0.0
    patience: int = 3  # early stopping: epochs without a better validation macro-F1; 0 disables
    seed: int = 42
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp32) | no | bf16 | fp16
    bucket: bool = True  # length-bucketed batches: fewer padding tokens, same epochs
    pad_multiple: int = 1  # pad each batch to a multiple of N tokens (8 or 16: fewer shapes for compile)
    compile: bool = False  # torch.compile the trained model: pays on a GPU over many steps, costs minutes first
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    device: str | None = None  # None lets accelerate choose; "cpu" forces the CPU
    progress: bool = True  # rich progress bars
    # Experiment trackers through accelerate (tensorboard, wandb, mlflow, ...; see TRACKERS): each epoch's
    # metrics.jsonl row, and the running train loss and learning rate every `log_every` optimiser steps.
    # TensorBoard writes under <output>/logs.
    report_to: list[str] = field(default_factory=list)
    log_every: int = 50
    # Weights of the gold-label cross-entropy per class: none, or balanced (n / (C * n_c) from the training
    # labels, as sklearn's "balanced": every class weighs the same in total; for imbalanced data). The KD terms
    # stay unweighted.
    class_weights: str = "none"


@dataclass
class TeacherConfig:
    """The teacher: a Hugging Face encoder + pooling + classification head."""

    backbone: str = "minilm-l6"  # short name, local path or hub id; "scratch" builds a random BERT
    pooling: str = "mean"  # mean (masked mean over tokens) | cls
    head: str = "mlp"  # mlp (Dropout, Linear h->h, GELU, Dropout, Linear h->C) | linear
    dropout: float = 0.2
    # Used with backbone="scratch": the shape of the randomly initialised BERT and its tokenizer.
    tokenizer: str = "wordpiece"  # wordpiece (English) | char (one token per CJK character)
    vocab_size: int = 8000
    num_layers: int = 4
    hidden_size: int = 256
    num_heads: int = 4
    intermediate_size: int = 1024
    # After selecting the epoch count on validation (kept in <output>/selection), train again from the same
    # seed on train + validation for that many epochs; the refit's last epoch is the saved teacher.
    refit: bool = False
    label_smoothing: float = 0.0  # eps of the teacher's gold-label cross-entropy (Szegedy et al. 2016); 0 = one-hot
    train: TrainConfig = field(default_factory=TrainConfig)


def _student_train() -> TrainConfig:
    return TrainConfig(lr=3e-4, epochs=20)


@dataclass
class StudentConfig:
    """The student: a registered architecture, a preset shape and how it is initialised."""

    preset: str = "tinybert-4l-312"  # tinybert-4l-312 | bert-mini-4l-256 | bert-tiny-2l-128 | bilstm | ...
    init: str = "random"  # random | teacher-layers | a local path or hub id of a checkpoint
    teacher_layers: list[int] | None = None  # with init=teacher-layers; None picks evenly spaced layers
    num_layers: int | None = None  # overrides of the preset shape
    hidden_size: int | None = None
    tokenizer: str = "teacher"  # teacher | wordpiece | char  (bilstm may use its own)
    embedding_init: str = "random"  # bilstm: random | teacher (projected when widths differ)
    # Transformer students: dropout on the encoder's hidden states and attention probabilities (BERT's
    # hidden_dropout_prob / attention_probs_dropout_prob); None keeps the encoder's own (0.1 for BERT).
    encoder_dropout: float | None = None
    # The preset's dropout: a transformer student's head, or a BiLSTM's between LSTM layers and before its
    # classifier (0.2); None keeps the preset's (a teacher-layers student keeps the teacher's head dropout).
    dropout: float | None = None
    # How token vectors become the sentence vector: a transformer student's mean | cls, a BiLSTM's
    # mean | max | last; and the classification head: linear | mlp (a hidden layer as wide as the sentence
    # vector, GELU). None keeps the preset's (a teacher-layers student keeps the teacher's).
    pooling: str | None = None
    head: str | None = None
    train: TrainConfig = field(default_factory=_student_train)


@dataclass
class DistillConfig:
    """The distillation method and its loss weights.

    Convention (as the first tutorial): `alpha` weights the KD term,
    loss = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, gold).
    torchdistill puts alpha on the CE term instead; set alpha = 1 - theirs to match it.
    """

    method: str = "soft"  # none | hard | soft | soft+hidden
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the KD term; (1 - alpha) goes to gold-label cross-entropy
    # The KD term of soft and soft+hidden: kl = T^2 * KL at temperature T (Hinton et al.); mse = mean squared
    # error of the logits, each row's mean removed (Tang et al. 2019); mse has no temperature.
    kd_loss: str = "kl"  # kl | mse
    hard_gold_weight: float = 0.0  # method=hard: weight of gold CE mixed with CE on the teacher argmax
    hidden_weight: float = 1.0  # soft+hidden: weight of the pooled-vector MSE
    layer_weight: float = 1.0  # soft+hidden, transformer students: weight of layer-mapped hidden MSE
    attention_weight: float = 1.0  # soft+hidden, transformer students: weight of attention-map MSE
    cache: bool = True  # compute teacher outputs once and reuse them from disk
    # The transfer set of the KD methods (none trains on the labelled rows only): the training rows plus
    # texts the teacher labels. Rows without a gold label get no cross-entropy term.
    augment: int = 0  # new texts per training text: masking, embedding-neighbour swaps, n-grams (Tang et al.)
    augment_p_mask: float = 0.1  # per word: replaced by the mask token
    augment_p_replace: float = 0.1  # per word: replaced by a nearest neighbour in the teacher's embeddings
    augment_p_ngram: float = 0.25  # per text: only a random 1..5-gram is kept
    unlabeled: list[str] = field(default_factory=list)  # text files, one text per line, labelled by the teacher
    # Several teachers (hard and soft): the soft targets are the weighted mean of every teacher's
    # softmax(z / T) at the configured temperature; the main teacher (--teacher) comes first.
    teachers: list[str] = field(default_factory=list)  # further teacher folders
    teacher_weights: list[float] = field(default_factory=list)  # one per teacher, main first; empty = equal
    # Per-step schedules (textkd/losses/schedules.py): the values above are the start values; a linear or
    # cosine schedule moves them to the *_end value at the last optimiser step. T^2 follows the current T.
    temperature_schedule: str = "constant"  # constant | linear | cosine
    temperature_end: float | None = None  # T at the last step, e.g. 1.0 for 8 -> 1
    alpha_schedule: str = "constant"  # constant | linear | cosine (e.g. KD-heavy early, gold-heavy late)
    alpha_end: float | None = None
    hidden_weight_schedule: str = "constant"  # constant | linear | cosine, for the soft+hidden pooled MSE
    hidden_weight_end: float | None = None


@dataclass
class RunConfig:
    """What `textkd run` trains, measures and exports; how each model trains stays in the other sections."""

    students: list[str] = field(default_factory=lambda: ["tinybert-4l-312", "bilstm"])  # preset or preset@init
    methods: list[str] = field(default_factory=lambda: ["none", "soft"])  # keep "none": KD gain = x - none
    # Per-student dotted overrides of the `student` section, by preset (or full "preset@init"),
    # e.g. {"bilstm": {"train.lr": 1e-3, "tokenizer": "wordpiece"}}.
    student_overrides: dict[str, dict] = field(default_factory=dict)
    bench: bool = True  # CPU latency/throughput of every model (bench.json)
    bench_runs: int = 50  # timed repetitions per measurement
    bench_warmup: int = 5  # untimed repetitions first
    bench_texts: int = 256  # test texts timed: latency cycles through them, throughput passes over them
    bench_backends: list[str] = field(default_factory=lambda: ["torch", "onnx", "onnx-int8"])
    export: bool = True  # ONNX export of every model to <model>/onnx/, with parity against PyTorch (export.json)
    int8: bool = True  # also a dynamically quantised int8 ONNX model
    allow_drift: bool = False  # pass an export that drifts from PyTorch (it is flagged in the report anyway)


@dataclass
class Config:
    """Everything one textkd job needs; sections mirror the CLI's dotted overrides."""

    name: str | None = None  # run name; default derived from dataset and model
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)  # what `textkd run` trains, measures and exports


# ------------------------------------------------------------------------------------------ validation

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
CLASS_WEIGHTS = ("none", "balanced")
# accelerate's experiment trackers (LoggerType); each needs its own package installed.
TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio")
CONFIG_SECTIONS = ("data", "teacher", "student", "distill")  # the sections check_config knows


def check_config(cfg: Config, sections: tuple[str, ...] = CONFIG_SECTIONS) -> None:
    """Reject values no run can use (0 epochs, a batch of 0, a negative augmentation count, a misspelt student
    preset, method, KD loss, schedule, pooling or head...) with the key that holds them, before any data is read
    or a model is trained; the API's entry points and `--print-config` call it first.

    Example:
        >>> check_config(Config(student=StudentConfig(train=TrainConfig(epochs=0))))
        Traceback (most recent call last):
        textkd.errors.ConfigError: student.train.epochs must be >= 1, got 0
    """
    if "data" in sections:
        at_least(cfg.data.max_len, 1, "data.max_len")  # the rest of the section is checked as it loads
    if "teacher" in sections:
        if not 0.0 <= cfg.teacher.dropout < 1.0:
            raise ConfigError(f"teacher.dropout must be in [0, 1), got {cfg.teacher.dropout}")
        if not 0.0 <= cfg.teacher.label_smoothing < 1.0:
            raise ConfigError(
                f"teacher.label_smoothing must be in [0, 1), got {cfg.teacher.label_smoothing}",
                hint="0.1 is the usual value",
            )
        from textkd.models.backbones import OWN_TOKENIZERS
        from textkd.models.classifier import HEADS, POOLINGS

        for key, allowed in (("pooling", POOLINGS), ("head", HEADS), ("tokenizer", OWN_TOKENIZERS)):
            one_of(getattr(cfg.teacher, key), allowed, f"teacher.{key}")
        check_train(cfg.teacher.train, "teacher.train")
    if "student" in sections:
        from textkd.models.students.registry import check_student_config

        check_student_config(cfg.student)
        for key in ("num_layers", "hidden_size"):
            if getattr(cfg.student, key) is not None:
                at_least(getattr(cfg.student, key), 1, f"student.{key}", hint="leave it unset for the preset's")
        if cfg.student.dropout is not None and not 0.0 <= cfg.student.dropout < 1.0:
            raise ConfigError(
                f"student.dropout must be in [0, 1), got {cfg.student.dropout}", hint="leave it unset for the preset's"
            )
        check_train(cfg.student.train, "student.train")
    if "distill" in sections:
        at_least(cfg.distill.augment, 0, "distill.augment")
        weights, count = cfg.distill.teacher_weights, len(cfg.distill.teachers) + 1
        if weights and (len(weights) != count or min(weights) < 0 or sum(weights) <= 0):
            raise ConfigError(
                f"distill.teacher_weights needs {count} non-negative weights (main teacher first) "
                f"with a positive sum, got {list(weights)}",
                hint="one per teacher, or none for equal",
            )
        for key in ("augment_p_mask", "augment_p_replace", "augment_p_ngram"):
            if not 0.0 <= getattr(cfg.distill, key) <= 1.0:
                raise ConfigError(f"distill.{key} must be in [0, 1], got {getattr(cfg.distill, key)}")
        from textkd.losses import build_loss
        from textkd.losses.schedules import distill_schedules

        build_loss(cfg.distill.method, cfg.distill)  # the method, the KD loss, the weights and T, as training will
        distill_schedules(cfg.distill)


def check_train(train: TrainConfig, where: str = "train") -> None:
    """The checks of `check_config` for one training section (`where` names it in messages)."""
    for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "pad_multiple"):
        at_least(getattr(train, key), 1, f"{where}.{key}")
    at_least(train.patience, 0, f"{where}.patience", hint="0 disables early stopping")
    if train.max_steps is not None:
        at_least(train.max_steps, 1, f"{where}.max_steps", hint="leave it unset for whole epochs")
    if not train.lr > 0:
        raise ConfigError(f"{where}.lr must be > 0, got {train.lr}", hint="e.g. 1e-4 for a pretrained encoder")
    for key in ("weight_decay", "max_grad_norm"):
        at_least(getattr(train, key), 0, f"{where}.{key}")
    if not 0.0 <= train.warmup_ratio < 1.0:
        raise ConfigError(f"{where}.warmup_ratio must be in [0, 1), got {train.warmup_ratio}")
    if not 0.0 <= train.ema_decay < 1.0:
        raise ConfigError(f"{where}.ema_decay must be in [0, 1) (0 disables the weight average), got {train.ema_decay}")
    unknown = [name for name in train.report_to if name not in TRACKERS]
    if unknown:
        raise ConfigError(f"{where}.report_to: unknown tracker {unknown[0]!r}", hint=f"use {', '.join(TRACKERS)}")
    at_least(train.log_every, 1, f"{where}.log_every")
    one_of(train.class_weights, CLASS_WEIGHTS, f"{where}.class_weights")
    one_of(train.mixed_precision, MIXED_PRECISION, f"{where}.mixed_precision")


def at_least(value: float, low: float, key: str, *, hint: str | None = None) -> None:
    """A ConfigError naming `key` when `value` is under `low`."""
    if value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}", hint=hint)


def one_of(value: str, allowed: tuple[str, ...], key: str) -> None:
    """A ConfigError naming `key` and the choices when `value` is not one of `allowed`."""
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


# ----------------------------------------------------------------------------------------------- I/O


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts (YAML/JSON ready)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, values: dict[str, Any], *, where: str = "", base: Any = None) -> Any:
    """Build dataclass `cls` from `values` on top of `base` (default: `cls()`), converting types.

    Unknown keys raise `ConfigError` naming the key and the closest valid one.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"section {where or cls.__name__!r} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = dataclasses.replace(base) if base is not None else cls()
    for key, value in values.items():
        key = str(key).replace("-", "_")
        dotted = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown config key {dotted!r}{_suggest(key, names, where)}")
        current = getattr(out, key)
        if dataclasses.is_dataclass(current):
            setattr(out, key, from_dict(type(current), value or {}, where=dotted, base=current))
        else:
            setattr(out, key, _convert(hints[key], value, dotted))
    return out


def _suggest(key: str, names: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    prefix = f"{where}." if where else ""
    return f"; did you mean {prefix + close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"


def _convert(hint: Any, value: Any, dotted: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, dotted)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value or {}, where=dotted)
    if origin is list:
        items = _parse_list(value, dotted)
        return [_convert(args[0], v, dotted) for v in items]
    if origin is dict:
        mapping = yaml.safe_load(value) if isinstance(value, str) else value  # "{bilstm: {train.lr: 1e-3}}"
        if not isinstance(mapping, dict):
            raise ConfigError(f"{dotted!r} expects a mapping, got {value!r}", hint="e.g. '{bilstm: {train.lr: 1e-3}}'")
        return mapping
    return _scalar(hint, value, dotted)


def _parse_list(value: Any, dotted: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):  # "a,b" or YAML's flow style "[a, b]"
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [v.strip() for v in text.split(",") if v.strip()]
    raise ConfigError(f"{dotted!r} expects a list, got {value!r}")


def _scalar(hint: Any, value: Any, dotted: str) -> Any:
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{dotted!r} expects {hint.__name__}, got {value!r}") from None
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file: a mapping of overrides (possibly empty)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}", hint="check the path or use one in recipes/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {getattr(err, 'problem', err)}", path=path, line=line) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a mapping of config sections", path=path)
    return data


def dotted_to_nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """{"a.b.c": 1} -> {"a": {"b": {"c": 1}}}."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with a value set for {part!r}")
        node[parts[-1]] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `update` into a copy of `base`."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the recipe YAML, then dotted overrides; validated into a `Config`."""
    values: dict[str, Any] = load_yaml(recipe) if recipe else {}
    if overrides:
        values = merge(values, dotted_to_nested(overrides))
    return from_dict(Config, values)


def config_yaml(cfg: Config) -> str:
    """The resolved config as YAML, every key in its section's order; `load_config` reads it back as a recipe.

    Example:
        >>> yaml.safe_load(config_yaml(Config()))["student"]["preset"]
        'tinybert-4l-312'
    """
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from textkd.utils import atomic_write_text

    atomic_write_text(path, config_yaml(cfg))


def parse_cli_overrides(args: list[str], aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """Turn extra CLI words `--a.b 1 --c.d=x --flag` into {"a.b": "1", "c.d": "x", "flag": "true"}.

    `aliases` maps a first segment to another (the `teacher` command maps `train` to `teacher.train`);
    `kd` always stands for `distill` (`--kd.temperature-schedule linear` = `--distill.temperature_schedule`).

    Example:
        >>> parse_cli_overrides(["--kd.temperature-end", "1", "--train.lr=1e-3"], {"train": "student.train"})
        {'distill.temperature_end': '1', 'student.train.lr': '1e-3'}
    """
    aliases = {"kd": "distill", **(aliases or {})}
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("--"):
            raise ConfigError(f"unexpected argument {word!r}", hint="overrides look like --section.key value")
        key, eq, value = word[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
        key = key.replace("-", "_")
        head, dot, rest = key.partition(".")
        if head in aliases:
            key = aliases[head] + (dot + rest if dot else "")
        if "." not in key and key not in ("name", "output_dir"):
            raise ConfigError(f"unknown option --{word[2:]}", hint="config overrides look like --section.key value")
        out[key] = value
        i += 1
    return out


# How, not what, a model is trained on.
_IGNORED = {"progress", "device", "eval_batch_size", "data_dir", "report_to", "log_every"}


def check_same_config(model_dir: Path, expected: Config, sections: tuple[str, ...]) -> None:
    """Refuse to reuse a finished model whose saved config.yaml differs from this run's in `sections`."""
    saved_path = model_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved, current = load_yaml(saved_path), to_dict(expected)
    changed = [key for section in sections for key in _diff(saved.get(section, {}), current[section], section)]
    if changed:
        raise ConfigError(
            f"{model_dir} was trained with a different config ({', '.join(changed[:4])})",
            hint=f"delete {model_dir} to retrain it, or write to another folder (`textkd run`: another --name)",
        )


def _diff(saved: Any, current: Any, where: str) -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            k for key in current if key not in _IGNORED for k in _diff(saved.get(key), current[key], f"{where}.{key}")
        ]
    return [] if saved == current else [f"{where}: {saved!r} -> {current!r}"]
