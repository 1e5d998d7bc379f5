"""The public Python API. The CLI only parses arguments and calls these functions.

Example:
    >>> import textkd
    >>> cfg = textkd.load_config("recipes/bbc-news.yaml")  # doctest: +SKIP
    >>> teacher = textkd.train_teacher(cfg)  # doctest: +SKIP
    >>> results = textkd.distill(cfg, teacher.output_dir, methods=["none", "soft"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textkd.config import (
    Config,
    DataConfig,
    at_least,
    check_config,
    check_same_config,
    from_dict,
    save_config,
    to_dict,
)
from textkd.data.augment import AUGMENT_VERSION, AugmentSettings, write_augmented
from textkd.data.batching import STUDENT, TEACHER, ModelInputs
from textkd.data.corpus import concat_encoded, encode_file, file_fingerprint
from textkd.data.dataset import DatasetSplits, TextDataset, reorder_labels
from textkd.data.loading import DataWarning, load_splits
from textkd.data.tokenize import encode, texts_fingerprint, tokenizer_fingerprint
from textkd.errors import ConfigError, DataError
from textkd.evaluation.card import refresh_model_card
from textkd.evaluation.metrics import agreement, classification_metrics
from textkd.hub import model_folder
from textkd.losses.composite import build_loss
from textkd.losses.schedules import applicable_schedules, describe_schedules, distill_schedules
from textkd.models.backbones import build_teacher
from textkd.models.classifier import TextkdClassifier
from textkd.models.io import count_parameters, load_model, model_size_mb, read_marker, require_model_dir
from textkd.models.students import build_student
from textkd.training.cache import (
    CACHE_DIRNAME,
    cache_folder,
    cache_key,
    combine_teachers,
    concat_outputs,
    corpus_dir,
    entry_lock,
    label_corpus,
    teacher_fingerprint,
    teacher_outputs,
)
from textkd.training.checkpoint import find_checkpoint
from textkd.training.distiller import Distiller
from textkd.training.distributed import main_process_first
from textkd.training.inference import forward_outputs, softmax
from textkd.training.trainer import METRICS_FILE, FitResult, Trainer, remove_checkpoint
from textkd.utils import atomic_write_json, atomic_write_text, read_jsonl, set_seed

METHODS = ("none", "hard", "soft", "soft+hidden")
EVAL_FILE = "eval_{split}.json"


@dataclass
class TrainResult:
    """A trained model: where it is, how it did on validation (selection) and on test."""

    output_dir: Path
    method: str | None
    fit: FitResult
    test_metrics: dict[str, Any]
    params: int
    size_mb: float


def load_data(data: DataConfig | None = None) -> DatasetSplits:
    """Load and validate a dataset's train/validation/test splits (see `textkd data list`)."""
    return load_splits(data or DataConfig())


def train_teacher(
    cfg: Config, output_dir: str | Path | None = None, *, resume: bool = False, splits: DatasetSplits | None = None
) -> TrainResult:
    """Fine-tune the teacher described by `cfg.teacher` on `cfg.data`; select on validation, report test.

    Example:
        >>> cfg = load_config(overrides={"data.name": "bbc-news", "teacher.train.epochs": 3})  # doctest: +SKIP
        >>> result = train_teacher(cfg, "runs/bbc/teacher")  # doctest: +SKIP
        >>> result.test_metrics["accuracy"]  # doctest: +SKIP
    """
    check_config(cfg, ("data", "teacher"))
    splits = splits or load_splits(cfg.data)
    out = Path(output_dir) if output_dir else Path(cfg.output_dir) / (cfg.name or splits.name) / "teacher"
    if cfg.teacher.refit:
        return _refit_teacher(cfg, out, resume, splits)
    fit = _fit_teacher(cfg, cfg.teacher.train, splits.train, splits.validation, splits, out, resume)
    return _finish(out, None, fit, splits, cfg.data.max_len)


def _fit_teacher(
    cfg: Config,
    train_cfg,
    train: TextDataset,
    validation: TextDataset | None,
    splits: DatasetSplits,
    out: Path,
    resume: bool,
    info: dict[str, Any] | None = None,
) -> FitResult:
    set_seed(train_cfg.seed)
    model, tokenizer = build_teacher(cfg.teacher, splits.label_names, train.texts, splits.language)
    save_config(cfg, out / "config.yaml")
    info = {"kind": "teacher", "backbone": cfg.teacher.backbone, "data": to_dict(cfg.data), **(info or {})}
    trainer = Trainer(
        model,
        tokenizer,
        train_cfg,
        out,
        label_names=splits.label_names,
        out_of_scope_label=splits.out_of_scope_label,
        save_info=info,
        label_smoothing=cfg.teacher.label_smoothing,
    )
    max_len = cfg.data.max_len
    return trainer.fit(
        _inputs(train, tokenizer, max_len),
        _inputs(validation, tokenizer, max_len) if validation is not None else None,
        resume=resume,
    )


SELECTION_DIR = "selection"


def _refit_teacher(cfg: Config, out: Path, resume: bool, splits: DatasetSplits) -> TrainResult:
    """Select the epoch count on validation (in `out/selection`), then train again on train + validation.

    The second run starts from the same seed and trains for the selected number of epochs with its schedule
    fitted to them; with no validation left, its last epoch is the model. Test is only evaluated.
    """
    selection_dir = out / SELECTION_DIR
    if resume and is_finished(selection_dir):
        selection = _finished_fit(selection_dir)  # the selection run completed before a restart
    else:
        fit = _fit_teacher(cfg, cfg.teacher.train, splits.train, splits.validation, splits, selection_dir, resume)
        selection = _finish(selection_dir, None, fit, splits, cfg.data.max_len).fit  # its test figure, for the record
    if selection.best_epoch < 1:
        raise ConfigError("the selection run trained no epoch, so there is no epoch count to refit with")
    full = TextDataset(
        splits.train.texts + splits.validation.texts,
        np.concatenate([splits.train.labels, splits.validation.labels]),
        splits.label_names,
        source=f"{splits.train.source} + {splits.validation.source}",
    )
    train_cfg = replace(cfg.teacher.train, epochs=selection.best_epoch, patience=0)
    refit = {
        "epochs": selection.best_epoch,
        "rows": len(full),
        "selection_dir": SELECTION_DIR,
        "selection_val_macro_f1": selection.best_metrics.get("val_macro_f1"),
        "selection_wall_s": round(selection.wall_s, 2),
    }
    fit = _fit_teacher(cfg, train_cfg, full, None, splits, out, resume, info={"refit": refit})
    return _finish(
        out, None, replace(fit, best_metrics={**selection.best_metrics, "refit": refit}), splits, cfg.data.max_len
    )


def has_checkpoint(model_dir: Path) -> bool:
    return find_checkpoint(model_dir / "checkpoint") is not None


def is_finished(folder: Path) -> bool:
    """Saved, evaluated on test (the last thing training does), with its training log and no checkpoint left.

    An interrupted rerun into a finished folder leaves a checkpoint. `textkd run`'s stages, `distill --resume`
    and the refit's selection run skip a folder only when this holds; otherwise they resume it.
    """
    return (
        (folder / "textkd_model.json").is_file()
        and (folder / EVAL_FILE.format(split="test")).is_file()
        and (folder / METRICS_FILE).is_file()
        and not has_checkpoint(folder)
    )


def student_dirname(preset: str, method: str) -> str:
    """A grid's folder for one student and method: `<preset>-<method with + as ->`."""
    return f"{preset}-{method.replace('+', '-')}"


def method_config(cfg: Config, method: str) -> Config:
    """The config one method's student folder records in config.yaml (and is checked against on reuse)."""
    return replace(cfg, distill=replace(cfg.distill, method=method))


def _finished_fit(folder: Path) -> FitResult:
    """The FitResult of a completed run, read back from its `metrics.jsonl`."""
    history = read_jsonl(folder / METRICS_FILE)
    best = [row for row in history if row.get("best")]
    if not best:
        raise DataError(
            "this run logged no selected epoch", path=folder / METRICS_FILE, hint="train it again without --resume"
        )
    return FitResult(folder, best[-1]["epoch"], best[-1], len(history), history[-1].get("wall_s", 0.0), history)


def distill(
    cfg: Config,
    teacher_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    methods: str | list[str] | None = None,
    resume: bool = False,
    splits: DatasetSplits | None = None,
) -> list[TrainResult]:
    """Train `cfg.student` with each method; every method shares seed, data order, epochs and schedule.

    Args:
        teacher_dir: a teacher saved by `train_teacher`, any sequence-classifier folder, or a Hugging Face hub
            repo id (downloaded once; see `textkd.hub.model_folder`). Its labels must be the dataset's; a
            different order is followed (`align_labels`).
        output_dir: the grid folder; each method writes `<output_dir>/<student>-<method>/`.
        methods: any of none, hard, soft, soft+hidden (a list, or one name); default `[cfg.distill.method]`.

    Example:
        >>> results = distill(cfg, "runs/bbc/teacher", methods=["none", "soft"])  # doctest: +SKIP
        >>> [r.test_metrics["accuracy"] for r in results]  # doctest: +SKIP
    """
    methods = [methods] if isinstance(methods, str) else (methods or [cfg.distill.method])
    for method in methods:
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}", hint=f"choose from {', '.join(METHODS)}")
    check_config(cfg, ("data", "student", "distill"))  # a bad schedule or preset fails here, before the teacher loads
    teacher_dir = model_folder(teacher_dir)
    teacher, teacher_tokenizer = load_model(teacher_dir)
    splits = align_labels(teacher, splits or load_splits(cfg.data), teacher_dir)
    if cfg.student.init == "teacher-layers" and (read_marker(teacher_dir) or {}).get("refit"):
        warnings.warn(
            f"{teacher_dir} was refit on train + validation: a student initialised from its layers "
            "starts out knowing the validation rows, so its validation scores (and the epoch chosen by "
            "them) are optimistic; distil from the selection run (<teacher>/selection) for a clean "
            "validation split",
            DataWarning,
            stacklevel=2,
        )
    grid = grid_dir(cfg, splits, output_dir)
    results = [
        _distill_one(cfg, method, teacher, teacher_tokenizer, Path(teacher_dir), splits, grid, resume)
        for method in methods
    ]
    _write_grid_summary(grid, cfg, results)
    return results


def grid_dir(cfg: Config, splits: DatasetSplits, output_dir: str | Path | None = None) -> Path:
    """Where `distill` writes a grid: `output_dir`, else `<output_dir>/<name or dataset>/students`."""
    return Path(output_dir) if output_dir else Path(cfg.output_dir) / (cfg.name or splits.name) / "students"


def _distill_one(
    cfg,
    method,
    teacher,
    teacher_tokenizer,
    teacher_dir,
    splits,
    grid,
    resume,
    *,
    out: Path | None = None,
    epoch_callback=None,
    test: bool = True,
) -> TrainResult | FitResult:
    """Train one student with one method; `test=False` (a search trial) stops after validation-based fitting."""
    train_cfg = cfg.student.train
    out = out or grid / student_dirname(cfg.student.preset, method)
    run_cfg = method_config(cfg, method)
    if resume and test and is_finished(out):  # completed before the restart: reused, not trained again
        check_same_config(out, run_cfg, ("data", "student", "distill"))
        metrics = json.loads((out / EVAL_FILE.format(split="test")).read_text(encoding="utf-8"))
        return _result(out, method, _finished_fit(out), metrics)
    set_seed(train_cfg.seed)  # the same initial student for every method
    student, tokenizer = build_student(
        cfg.student, teacher, teacher_tokenizer, splits.label_names, splits.train.texts, splits.language
    )
    save_config(run_cfg, out / "config.yaml")
    max_len = cfg.data.max_len
    shared = tokenizer_fingerprint(tokenizer) == tokenizer_fingerprint(teacher_tokenizer)
    train = _inputs(splits.train, tokenizer, max_len, None if shared else teacher_tokenizer)
    prefix = STUDENT if shared else TEACHER
    # Layer-mapped hidden states and attention maps need a transformer student reading the teacher's tokens.
    layer_terms = shared and isinstance(student, TextkdClassifier) and isinstance(teacher, TextkdClassifier)
    loss = build_loss(method, cfg.distill, layer_terms=layer_terms)
    schedules = distill_schedules(cfg.distill)
    needs_teacher = method != "none"
    train, cached, transfer = _teacher_targets(
        cfg, method, teacher, teacher_tokenizer, teacher_dir, tokenizer, train, prefix, splits
    )
    dims = (student.pooled_size, teacher.pooled_size) if method == "soft+hidden" else (None, None)
    info = {
        "kind": "student",
        "preset": cfg.student.preset,
        "method": method,
        "teacher": str(teacher_dir),
        "data": to_dict(cfg.data),
        "loss": repr(loss),
        "schedules": describe_schedules(applicable_schedules(schedules, loss.terms)),
        "transfer_set": transfer,
        "teachers": [str(teacher_dir), *cfg.distill.teachers] if needs_teacher and cfg.distill.teachers else None,
    }
    distiller = Distiller(
        student,
        tokenizer,
        train_cfg,
        out,
        teacher=teacher if needs_teacher else None,
        loss=loss,
        teacher_outputs=cached,
        teacher_prefix=prefix,
        student_pooled_dim=dims[0],
        teacher_pooled_dim=dims[1],
        schedules=schedules,
        label_names=splits.label_names,
        out_of_scope_label=splits.out_of_scope_label,
        save_info=info,
        epoch_callback=epoch_callback,
    )
    fit = distiller.fit(train, _inputs(splits.validation, tokenizer, max_len), resume=resume)
    if not test:
        remove_checkpoint(out)
        return fit
    return _finish(out, method, fit, splits, max_len, teacher_dir=teacher_dir)


def _teacher_targets(
    cfg, method, teacher, teacher_tokenizer, teacher_dir: Path, tokenizer, train: ModelInputs, prefix: str, splits
) -> tuple[ModelInputs, Any, dict[str, Any] | None]:
    """The training inputs (grown by a transfer set), the teacher outputs over them (None: online or `none`),
    and the transfer set's description. Reads and fills the teacher's cache, each entry under its own lock
    (`entry_lock`), so parallel runs on one teacher wait only for the entries they share."""
    train_cfg, max_len = cfg.student.train, cfg.data.max_len
    if method == "none":
        return train, None, None
    if not cfg.distill.cache:  # the teacher runs online; ensembles and transfer sets need the cache
        if cfg.distill.teachers:
            _other_teachers(cfg, method, splits, None)
        if cfg.distill.augment or cfg.distill.unlabeled:
            _transfer_set(cfg, method, teacher, teacher_tokenizer, teacher_dir, tokenizer, train, None, splits)
        return train, None, None
    device = _device(train_cfg)
    with main_process_first(device):  # several processes: the first computes, the others read the files
        with entry_lock(cache_folder(teacher_dir, train, prefix)):
            cached = teacher_outputs(
                teacher,
                train,
                teacher_dir=teacher_dir,
                prefix=prefix,
                need_pooled=method == "soft+hidden",
                batch_size=train_cfg.eval_batch_size,
                device=device,
            )
    members, weights = [], []
    if cfg.distill.teachers:
        members, weights = _other_teachers(cfg, method, splits, cached)
        parts = [cached]
        for model, tok, folder in members:
            inputs = _inputs(splits.train, tok, max_len)
            with entry_lock(cache_folder(folder, inputs)):
                parts.append(
                    teacher_outputs(
                        model, inputs, teacher_dir=folder, batch_size=train_cfg.eval_batch_size, device=device
                    )
                )
        tag = _ensemble_digest(cache_key(teacher_dir, train, prefix), members, weights, cfg.distill.temperature)
        folder = teacher_dir / CACHE_DIRNAME / f"ensemble-{tag}"
        with entry_lock(folder):
            cached = combine_teachers(parts, weights, cfg.distill.temperature, folder)
    transfer = None
    if cfg.distill.augment or cfg.distill.unlabeled:
        train, cached, transfer = _transfer_set(
            cfg, method, teacher, teacher_tokenizer, teacher_dir, tokenizer, train, cached, splits, members, weights
        )
    return train, cached, transfer


def _finish(out: Path, method, fit: FitResult, splits: DatasetSplits, max_len: int, teacher_dir=None) -> TrainResult:
    """Evaluate the selected (best-on-validation) model on test, write eval JSON and the model card, drop the
    checkpoint."""
    metrics = evaluate(out, splits=splits, split="test", max_len=max_len, teacher_dir=teacher_dir)
    remove_checkpoint(out)
    refresh_model_card(out, create=True)  # a README.md of the user's own is kept
    return _result(out, method, fit, metrics)


def _result(out: Path, method, fit: FitResult, metrics: dict[str, Any]) -> TrainResult:
    model, _ = load_model(out)
    return TrainResult(out, method, fit, metrics, count_parameters(model), model_size_mb(out))


def evaluate(
    model_dir: str | Path,
    data: DataConfig | None = None,
    *,
    split: str = "test",
    splits: DatasetSplits | None = None,
    max_len: int | None = None,
    teacher_dir: str | Path | None = None,
    write: bool = True,
    batch_size: int = 256,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class scores, confusion matrix and ECE of a saved model.

    Without `data`, the dataset the model was trained on is used (from its `textkd_model.json`). Texts are cut
    to `max_len` tokens, by default the model's training setting (else `data.max_len`, else 128), for the
    teacher of the agreement figure too, as in distillation. The metrics are written to
    `<model_dir>/eval_<split>.json` unless `write=False`. `trust_pickle` allows a pickle checkpoint (.bin, .pt);
    loading one can run arbitrary code.

    Example:
        >>> m = evaluate("runs/bbc/teacher")  # doctest: +SKIP
        >>> round(m["accuracy"], 3)  # doctest: +SKIP
    """
    from textkd.predictor import trained_max_len

    model_dir = model_folder(model_dir)
    model, tokenizer = load_model(model_dir, trust_pickle=trust_pickle)
    if splits is None:
        data = data or _model_data_config(model_dir)
        splits = load_splits(data)
    max_len = max_len or trained_max_len(model_dir) or (data.max_len if data is not None else 128)
    dataset = splits.split(split)
    labels = _labels_for_model(model, dataset, model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    inputs = ModelInputs({STUDENT: encode(dataset.texts, tokenizer, max_len)}, labels)
    started = time.perf_counter()
    logits = forward_outputs(model.to(device), inputs, batch_size, device=device)["logits"]
    metrics = _metrics(labels, logits, _model_labels(model), max_len, started, splits.out_of_scope_label)
    metrics.update({"split": split, "dataset": splits.name, "notes": splits.notes, "partial_train": splits.partial})
    if teacher_dir is not None:
        teacher_dir = model_folder(teacher_dir)
        teacher, teacher_tokenizer = load_model(teacher_dir)
        teacher.to(device)
        teacher_inputs = ModelInputs({STUDENT: encode(dataset.texts, teacher_tokenizer, max_len)}, labels)
        teacher_logits = teacher_outputs(
            teacher, teacher_inputs, teacher_dir=teacher_dir, batch_size=batch_size, device=device
        ).logits
        metrics["agreement_with_teacher"] = agreement(logits.argmax(-1), np.asarray(teacher_logits).argmax(-1))
    if write:
        atomic_write_json(Path(model_dir) / EVAL_FILE.format(split=split), metrics)
    return metrics


def predict(
    model_dir: str | Path,
    texts: str | list[str],
    *,
    top_k: int = 3,
    backend: str = "auto",
    trust_pickle: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Top-k labels with probabilities for each text, and the latency of the call.

    `model_dir` is a model folder, an ONNX export folder (`textkd export`) or a hub repo id (`model_folder`);
    `texts` a list of texts, or one string for a single text; `trust_pickle` allows a pickle checkpoint (.bin,
    .pt), which can run arbitrary code when loaded; `progress` shows a bar on stderr.

    Returns:
        {"model": str, "backend": "torch" | "onnx", "latency_ms": float, "predictions": [{"text": str,
        "labels": [{"label": str, "score": float}, ...]}, ...]}, labels by decreasing probability;
        latency_ms covers tokenisation and the forward passes, not loading the model.

    Example:
        >>> out = predict("runs/bbc/teacher", ["Stocks fell sharply today"], top_k=2)  # doctest: +SKIP
        >>> out["predictions"][0]["labels"][0]["label"]  # doctest: +SKIP
        'business'
    """
    from textkd.predictor import Predictor, as_texts

    texts = as_texts(texts)
    if not texts:
        raise DataError("no texts to predict", hint="pass texts as arguments or --file FILE")
    predictor = Predictor(model_dir, backend=backend, trust_pickle=trust_pickle)
    started = time.perf_counter()
    top = predictor.predict(texts, top_k=top_k, progress=progress)
    latency_ms = (time.perf_counter() - started) * 1000
    predictions = [{"text": text, "labels": labels} for text, labels in zip(texts, top, strict=True)]
    return {
        "model": str(model_dir),
        "backend": predictor.backend.name,
        "latency_ms": round(latency_ms, 3),
        "predictions": predictions,
    }


PREDICTION_SUFFIXES = (".csv", ".tsv", ".jsonl")


def check_predictions_path(path: str | Path) -> Path:
    """`path` as a Path when `write_predictions` can write it (by its suffix), else a ConfigError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PREDICTION_SUFFIXES:
        raise ConfigError(
            f"cannot write predictions to a {suffix or 'suffix-less'} file",
            path=path,
            hint=f"name a {', '.join(PREDICTION_SUFFIXES)} file",
        )
    return path


def write_predictions(predictions: list[dict[str, Any]], path: str | Path) -> Path:
    """Write `predict(...)["predictions"]` to a file, one row per text in input order (atomically).

    `.jsonl`: each prediction as one JSON line (`{"text", "labels": [{"label", "score"}, ...]}`). `.csv` and
    `.tsv`: columns `text`, `label`, `score`, then `label_2`, `score_2`, ... for the further top-k labels.

    Example:
        >>> out = predict("runs/bbc/teacher", ["Stocks fell sharply today"])  # doctest: +SKIP
        >>> write_predictions(out["predictions"], "predictions.csv")  # doctest: +SKIP
    """
    import csv
    import io

    path = check_predictions_path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        text = "".join(json.dumps(pred, ensure_ascii=False) + "\n" for pred in predictions)
    else:
        k = max((len(pred["labels"]) for pred in predictions), default=1)
        header = ["text", "label", "score"] + [f"{name}_{i}" for i in range(2, k + 1) for name in ("label", "score")]
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\n")
        writer.writerow(header)
        for pred in predictions:
            scores = (value for top in pred["labels"] for value in (top["label"], f"{top['score']:.6f}"))
            writer.writerow([pred["text"], *scores])
        text = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def evaluate_file(
    model_dir: str | Path,
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    fmt: str | None = None,
    max_len: int | None = None,
    out_of_scope_label: str | None = None,
    batch_size: int = 64,
    trust_pickle: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """The metrics of `evaluate` on a labelled file of your own (new data, another month's queries).

    `model_dir` is a model folder, an ONNX export folder (the model as deployed) or a hub repo id. `path` is a
    CSV, TSV, JSON Lines or JSON file (`fmt` guesses from the extension) whose `label_column` holds the model's
    label names or integer ids into its labels. Texts are cut to `max_len` tokens, by default the model's
    training setting (else 128). `out_of_scope_label` names an out-of-scope class (a clinc150 model's "oos")
    to add in-scope accuracy and out-of-scope recall; `progress` shows a bar on stderr. Nothing is written
    into the model folder.

    Example:
        >>> m = evaluate_file("runs/banking77/students/bilstm-soft", "march.csv")  # doctest: +SKIP
        >>> m["rows"], round(m["accuracy"], 3)  # doctest: +SKIP
    """
    from textkd.data.loading import read_labelled_file
    from textkd.predictor import Predictor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = Predictor(model_dir, max_len=max_len, batch_size=batch_size, device=device, trust_pickle=trust_pickle)
    if out_of_scope_label is not None and out_of_scope_label not in predictor.labels:
        raise ConfigError(
            f"{out_of_scope_label!r} is not one of the model's labels",
            path=predictor.model_dir,
            hint="name its out-of-scope class, e.g. oos for clinc150",
        )
    dataset = read_labelled_file(path, predictor.labels, fmt=fmt, text_column=text_column, label_column=label_column)
    started = time.perf_counter()
    logits = predictor.logits(dataset.texts, progress=progress)
    metrics = _metrics(dataset.labels, logits, predictor.labels, predictor.max_len, started, out_of_scope_label)
    metrics.update({"split": "file", "dataset": str(path), "backend": predictor.backend.name})
    return metrics


def _metrics(
    labels: np.ndarray,
    logits: np.ndarray,
    label_names: list[str],
    max_len: int,
    started: float,
    out_of_scope_label: str | None,
) -> dict[str, Any]:
    """Classification metrics of (N, C) logits against the model's label ids, with rows, max_len and the
    seconds since `started`."""
    metrics = classification_metrics(
        labels, logits.argmax(-1), probs=softmax(logits), label_names=label_names, out_of_scope_label=out_of_scope_label
    )
    metrics.update({"rows": len(labels), "max_len": max_len, "eval_s": round(time.perf_counter() - started, 3)})
    return metrics


# ------------------------------------------------------------------------------------------- helpers


def label(
    teacher_dir: str | Path,
    texts_path: str | Path,
    output_dir: str | Path | None = None,
    *,
    max_len: int | None = None,
    need_pooled: bool = False,
    batch_size: int = 256,
    chunk_size: int = 8192,
    device: str | None = None,
) -> dict[str, Any]:
    """Label every text of a corpus file with the teacher (streamed; see `training.cache.label_corpus`).

    The default output folder is the teacher's cache, where `distill(..., unlabeled=[texts_path])` finds it.

    Example:
        >>> label("runs/banking77/teacher", "unlabeled.txt")["rows"]  # doctest: +SKIP
        1000000
    """
    started = time.perf_counter()
    if not Path(texts_path).is_file():
        raise DataError("no such corpus file", path=texts_path, hint="one text per line, UTF-8")
    for name, value in (("max_len", max_len), ("batch_size", batch_size), ("chunk_size", chunk_size)):
        if value is not None:
            at_least(value, 1, name)
    teacher_dir = model_folder(teacher_dir)
    teacher, tokenizer = load_model(teacher_dir)
    if max_len is None:
        try:
            max_len = _model_data_config(Path(teacher_dir)).max_len
        except ConfigError:
            raise ConfigError(
                "the teacher does not record its max_len", path=teacher_dir, hint="pass --max-len"
            ) from None
    folder = Path(output_dir) if output_dir else corpus_dir(teacher_dir, texts_path, max_len)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with entry_lock(folder):  # a distil run on this teacher that needs the same corpus waits for it
        out = label_corpus(
            teacher,
            tokenizer,
            texts_path,
            folder,
            max_len=max_len,
            need_pooled=need_pooled,
            batch_size=batch_size,
            chunk_size=chunk_size,
            device=device,
        )
    return {
        "folder": folder,
        "rows": int(out.logits.shape[0]),
        "cached": out.cached,
        "wall_s": time.perf_counter() - started,
    }


def _other_teachers(cfg, method: str, splits, cached) -> tuple[list[tuple[Any, Any, Path]], list[float]]:
    """The further teachers of an ensemble (model, tokenizer, folder), checked, and every teacher's weight."""
    if method == "soft+hidden":
        raise ConfigError(
            "several teachers combine soft targets only; soft+hidden matches one teacher's representations",
            hint="use soft or hard with distill.teachers",
        )
    if cfg.distill.kd_loss == "mse" and method != "hard":
        raise ConfigError(
            "several teachers combine soft targets at a temperature; distill.kd_loss=mse matches one teacher's logits",
            hint="use distill.kd_loss=kl with distill.teachers",
        )
    if cached is None:
        raise ConfigError("several teachers need the teacher-output cache", hint="leave distill.cache at true")
    weights = list(cfg.distill.teacher_weights) or [1.0] * (len(cfg.distill.teachers) + 1)  # check_config checked
    members = []
    for folder in map(model_folder, cfg.distill.teachers):
        model, tok = load_model(folder)
        _check_labels(model, splits, folder)
        members.append((model, tok, folder))
    return members, weights


def _ensemble_digest(key: str, members, weights: list[float], temperature: float) -> str:
    """The cache tag of an ensemble's outputs over the rows `key` names: its further teachers, weights and T."""
    key = "|".join([key] + [teacher_fingerprint(folder) for _, _, folder in members])
    return hashlib.sha256(f"{key}|{weights}|{temperature}".encode()).hexdigest()[:16]


def _transfer_set(
    cfg,
    method,
    teacher,
    teacher_tokenizer,
    teacher_dir: Path,
    tokenizer,
    train: ModelInputs,
    cached,
    splits,
    members=(),
    weights=(),
) -> tuple[ModelInputs, Any, dict[str, Any]]:
    """The training rows plus augmented and unlabeled texts, all labelled by the teacher, memory-mapped.

    Every piece lives in the teacher's cache folder and is reused by later methods and runs: the augmented
    texts, the teacher outputs of each text file, its tokens for the student, and the joined arrays.
    Rows without a gold label carry label -100 (no cross-entropy term).
    """
    if cached is None:
        raise ConfigError(
            "distill.augment and distill.unlabeled need the teacher-output cache", hint="leave distill.cache at true"
        )
    files = _transfer_files(cfg, teacher, teacher_tokenizer, teacher_dir, splits)
    need_pooled = method == "soft+hidden"
    # Labelling is a collective (every process labels its share); what follows runs on the main process first.
    labelled = {
        path: _label_file(cfg, path, [(teacher, teacher_tokenizer, teacher_dir), *members], need_pooled)
        for path in files
    }
    cache_root, max_len = teacher_dir / CACHE_DIRNAME, cfg.data.max_len
    streams, outputs = [train.streams[STUDENT]], [cached]
    with main_process_first(_device(cfg.student.train)):
        for path in files:
            parts = labelled[path]
            if members:
                tag = _ensemble_digest(f"{file_fingerprint(path)}|{max_len}", members, weights, cfg.distill.temperature)
                ensemble = cache_root / f"ensemble-{tag}"
                with entry_lock(ensemble):
                    parts = [combine_teachers(parts, weights, cfg.distill.temperature, ensemble)]
            outputs.append(parts[0])
            tokens = cache_root / f"tokens-{tokenizer_fingerprint(tokenizer)}-{max_len}-{file_fingerprint(path)}"
            with entry_lock(tokens):
                streams.append(encode_file(path, tokenizer, max_len, tokens))
        key = "|".join(s.key for s in streams)
        if members:  # the joined outputs are an ensemble's, not the main teacher's
            key = _ensemble_digest(key, members, weights, cfg.distill.temperature)
        key = hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = cache_root / f"transfer-{key}{'-pooled' if need_pooled else ''}"
        with entry_lock(folder):
            joined = concat_encoded(streams, folder / "student")
            outputs = concat_outputs(outputs, folder / "teacher")
    extra = len(joined) - len(train)
    labels = np.concatenate([train.labels, np.full(extra, -100, dtype=np.int64)])
    info = {
        "labelled_rows": len(train),
        "teacher_labelled_rows": extra,
        "augment": cfg.distill.augment,
        "unlabeled": [str(p) for p in cfg.distill.unlabeled],
    }
    return ModelInputs({STUDENT: joined}, labels, train.pad_multiple), outputs, info


def _transfer_files(cfg, teacher, teacher_tokenizer, teacher_dir: Path, splits) -> list[Path]:
    """The text files of the transfer set: each --unlabeled file, checked, then the augmented texts (cached)."""
    train_cfg, distill_cfg = cfg.student.train, cfg.distill
    files = [Path(p) for p in distill_cfg.unlabeled]
    for path in files:
        if not path.is_file():
            raise DataError("no such unlabeled-text file", path=path, hint="one text per line, UTF-8")
    if distill_cfg.augment:
        settings = AugmentSettings(
            p_mask=distill_cfg.augment_p_mask,
            p_replace=distill_cfg.augment_p_replace,
            p_ngram=distill_cfg.augment_p_ngram,
        )
        tag = f"{texts_fingerprint(list(splits.train.texts))}-{distill_cfg.augment}-{train_cfg.seed}"
        tag += f"-{settings.p_mask:g}-{settings.p_replace:g}-{settings.p_ngram:g}-v{AUGMENT_VERSION}"
        path = teacher_dir / CACHE_DIRNAME / f"augment-{tag}.txt"
        with main_process_first(_device(train_cfg)), entry_lock(path):
            if not path.is_file():
                write_augmented(
                    splits.train.texts,
                    distill_cfg.augment,
                    path,
                    seed=train_cfg.seed,
                    teacher=teacher,
                    tokenizer=teacher_tokenizer,
                    settings=settings,
                )
        files.append(path)
    return files


def _label_file(cfg, path: Path, teachers, need_pooled: bool) -> list[Any]:
    """Each teacher's outputs over one text file (pooled vectors from the first teacher only), cached."""
    train_cfg, max_len = cfg.student.train, cfg.data.max_len
    parts = []
    for index, (model, tok, folder) in enumerate(teachers):
        out = corpus_dir(folder, path, max_len)
        with entry_lock(out):
            parts.append(
                label_corpus(
                    model,
                    tok,
                    path,
                    out,
                    max_len=max_len,
                    need_pooled=need_pooled and index == 0,
                    batch_size=train_cfg.eval_batch_size,
                    device=_device(train_cfg),
                    progress=train_cfg.progress,
                )
            )
    return parts


def _inputs(dataset: TextDataset, tokenizer, max_len: int, teacher_tokenizer=None) -> ModelInputs:
    streams = {STUDENT: encode(dataset.texts, tokenizer, max_len)}
    if teacher_tokenizer is not None:
        streams[TEACHER] = encode(dataset.texts, teacher_tokenizer, max_len)
    return ModelInputs(streams, dataset.labels)


def _device(train_cfg) -> str:
    if train_cfg.device:
        return train_cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_labels(model) -> list[str]:
    id2label = model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def _labels_for_model(model, dataset: TextDataset, model_dir) -> np.ndarray:
    """Map the dataset's label ids onto the model's label ids by name."""
    names = _model_labels(model)
    index = {name: i for i, name in enumerate(names)}
    missing = sorted({dataset.label_names[i] for i in set(dataset.labels.tolist())} - set(index))
    if missing:
        raise DataError(
            f"labels {missing[:5]} are not among the model's {len(names)} labels",
            path=model_dir,
            hint="evaluate on the dataset the model was trained on",
        )
    lookup = np.array([index.get(name, -1) for name in dataset.label_names], dtype=np.int64)
    return lookup[dataset.labels]


def align_labels(teacher, splits: DatasetSplits, teacher_dir) -> DatasetSplits:
    """`splits` with the teacher's label order: the same labels listed in another order (a hub teacher) are
    followed; other labels are refused with the ones that differ."""
    names = _model_labels(teacher)
    if names != list(splits.label_names) and sorted(names) == sorted(splits.label_names):
        return reorder_labels(splits, names)
    _check_labels(teacher, splits, teacher_dir)
    return splits


def _check_labels(teacher, splits: DatasetSplits, teacher_dir) -> None:
    names = _model_labels(teacher)
    if names == list(splits.label_names):
        return
    if sorted(names) == sorted(splits.label_names):
        raise DataError(
            "this teacher lists the dataset's labels in another order than the first teacher",
            path=teacher_dir,
            hint="use teachers trained with the same label order",
        )
    teacher_only = [n for n in names if n not in set(splits.label_names)]
    dataset_only = [n for n in splits.label_names if n not in set(names)]
    hint = "distil on the dataset the teacher was trained on"
    if teacher_only and all(re.fullmatch(r"LABEL_\d+", n) for n in teacher_only):
        hint = "its config.json has generic labels (LABEL_0, ...): set id2label to the dataset's label names"
    raise DataError(
        f"the teacher's {len(names)} labels differ from the dataset's {splits.num_labels} (teacher "
        f"only: {teacher_only[:3]}; dataset only: {dataset_only[:3]})",
        path=teacher_dir,
        hint=hint,
    )


def _model_data_config(model_dir) -> DataConfig:
    """The dataset a saved model (a folder or hub repo id) records, or a ConfigError naming --data."""
    info = read_marker(require_model_dir(model_folder(model_dir))) or {}
    if "data" not in info:
        raise ConfigError(
            "the model does not record its dataset", path=model_dir, hint="pass --data NAME (or --train/--test files)"
        )
    return from_dict(DataConfig, info["data"])


def _write_grid_summary(grid: Path, cfg: Config, results: list[TrainResult]) -> None:
    """State what every method shared (the fairness of the comparison) next to their figures.

    One file per student preset, `comparison_<preset>.json`; methods run later are merged in.
    """
    train = cfg.student.train
    path = grid / f"comparison_{cfg.student.preset}.json"
    previous = json.loads(path.read_text(encoding="utf-8")).get("results", []) if path.is_file() else []
    rows = {row["method"]: row for row in previous}
    for r in results:
        rows[r.method] = {
            "method": r.method,
            "dir": str(r.output_dir),
            "accuracy": r.test_metrics["accuracy"],
            "macro_f1": r.test_metrics["macro_f1"],
            "agreement_with_teacher": r.test_metrics.get("agreement_with_teacher"),
            "best_epoch": r.fit.best_epoch,
            "wall_s": round(r.fit.wall_s, 2),
            "params": r.params,
            "size_mb": round(r.size_mb, 3),
            "transfer_set": (read_marker(r.output_dir) or {}).get("transfer_set"),
        }
    transfer = bool(cfg.distill.augment or cfg.distill.unlabeled)
    summary = {
        "student": cfg.student.preset,
        "init": cfg.student.init,
        "shared": {
            "seed": train.seed,
            "epochs": train.epochs,
            "batch_size": train.batch_size,
            "lr": train.lr,
            "optimizer": "AdamW",
            "weight_decay": train.weight_decay,
            "schedule": f"linear warm-up {train.warmup_ratio:.0%} then linear decay",
            "weights_evaluated": (
                f"moving average, decay {train.ema_decay}" if train.ema_decay else "the trained weights"
            ),
            "initial_weights": "identical for every method (seeded before the student is built)",
            "data_order": "length-bucketed, seeded by (seed, epoch): identical for every method"
            + ("; the KD methods' epochs also cover the teacher-labelled texts (see transfer_set)" if transfer else ""),
        },
        "distill": to_dict(cfg.distill),
        "results": [rows[m] for m in METHODS if m in rows],
    }
    atomic_write_json(path, summary)
