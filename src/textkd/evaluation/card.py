"""A model card (`README.md`) for a trained model folder, written from the files beside it.

Every textkd model folder holds what a card needs: `textkd_model.json` (role, preset, method, teacher, the
loss), `config.yaml` (the resolved settings), `eval_test.json` (test figures), `metrics.jsonl` (the epochs)
and, once measured, `bench.json` (CPU latency). `write_model_card` turns them into the `README.md` the
Hugging Face Hub shows for a pushed folder (setfit and sentence-transformers write one the same way):
what the model is, its test figures next to its teacher's, how it was trained, how to load it, its labels.

`textkd teacher` and `textkd distill` write the card when a model has been evaluated on test;
`textkd card MODEL_DIR` writes it again (after `textkd bench`, say, or for a folder from an older version).

Example:
    >>> write_model_card("runs/banking77/students/bilstm-soft")  # doctest: +SKIP
    PosixPath('runs/banking77/students/bilstm-soft/README.md')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textkd.errors import ModelLoadError
from textkd.evaluation.report import EVAL_TEST, is_evaluated, model_summary
from textkd.models.io import require_model_dir
from textkd.utils import atomic_write_text

CARD = "README.md"
_FRONT = "---\nlibrary_name: textkd\n"  # how every card textkd writes begins
_METHODS = {
    "none": "no distillation (cross-entropy on the gold labels; the baseline)",
    "hard": "hard-label distillation (cross-entropy on the teacher's argmax)",
    "soft": "soft-label distillation (the student learns the teacher's scores for every class, plus "
    "cross-entropy on the gold labels)",
    "soft+hidden": "soft-label distillation with the student's hidden states matched to the teacher's",
}
_SETTINGS = {  # hyper-parameter key -> how the card names it, in display order
    "backbone": "backbone",
    "pooling": "pooling",
    "head": "head",
    "preset": "student preset",
    "init": "initialisation",
    "num_layers": "layers",
    "hidden_size": "hidden size",
    "dropout": "dropout",
    "encoder_dropout": "encoder dropout",
    "embedding_init": "embedding initialisation",
    "tokenizer": "tokenizer",
    "method": "method",
    "kd_loss": "KD term",
    "temperature": "temperature T",
    "alpha": "alpha (KD weight)",
    "kd_schedule": "KD schedules",
    "augment": "augmented copies per text",
    "unlabeled": "unlabeled text files",
    "teachers": "further teachers",
    "epochs": "epochs",
    "max_steps": "max steps",
    "batch_size": "batch size",
    "lr": "learning rate",
    "weight_decay": "weight decay",
    "warmup_ratio": "warm-up ratio",
    "patience": "early-stopping patience",
    "ema_decay": "weight-average decay",
    "class_weights": "class weights",
    "seed": "seed",
    "max_len": "max tokens",
}


def write_model_card(model_dir: str | Path, *, force: bool = False) -> Path:
    """Write `model_dir/README.md` from the folder's files and return its path.

    A `README.md` that textkd did not write (the user's own card) is kept unless `force`.

    Example:
        >>> write_model_card("runs/banking77/students/bilstm-soft")  # doctest: +SKIP
        PosixPath('runs/banking77/students/bilstm-soft/README.md')

    Raises:
        ModelLoadError: the folder is not an evaluated textkd model (no `textkd_model.json` or no
            `eval_test.json`), or it holds a README.md of its own and `force` is false.
    """
    folder = Path(model_dir)
    path = folder / CARD
    card = render_model_card(folder)
    if not force and path.is_file() and not is_textkd_card(path):
        raise ModelLoadError(
            "the folder has a README.md that textkd did not write; it is kept",
            path=path,
            hint="move it away, or pass --force to replace it",
        )
    atomic_write_text(path, card)
    return path


def refresh_model_card(model_dir: str | Path, *, create: bool = False) -> Path | None:
    """Write the card again where the folder holds one textkd wrote, or none and `create`; else nothing.

    A README.md of the user's own is never touched, nor a folder not evaluated yet. Training calls it with
    `create=True` once a model has its test figures; `textkd bench` without, to add the latency.

    Example:
        >>> refresh_model_card("runs/banking77/teacher")  # doctest: +SKIP
        PosixPath('runs/banking77/teacher/README.md')
    """
    path = Path(model_dir) / CARD
    mine = is_textkd_card(path) if path.is_file() else create
    return write_model_card(model_dir) if mine and is_evaluated(Path(model_dir)) else None


def is_textkd_card(path: str | Path) -> bool:
    """Whether a README.md is a card textkd wrote (its front matter names textkd as the library).

    Example:
        >>> is_textkd_card("runs/banking77/teacher/README.md")  # doctest: +SKIP
        True
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(len(_FRONT)) == _FRONT


def render_model_card(model_dir: str | Path) -> str:
    """The model card of an evaluated textkd model folder, as Markdown with Hub front matter.

    Example:
        >>> render_model_card("runs/banking77/teacher").splitlines()[1]  # doctest: +SKIP
        'library_name: textkd'
    """
    folder = require_model_dir(model_dir)
    if not (folder / "textkd_model.json").is_file():
        raise ModelLoadError(
            "not a textkd model folder (no textkd_model.json)",
            path=folder,
            hint="pass a folder written by `textkd teacher` or `textkd distill`",
        )
    if not (folder / EVAL_TEST).is_file():
        raise ModelLoadError(
            "the model has not been evaluated on test yet (no eval_test.json)",
            path=folder,
            hint=f"run `textkd evaluate {folder}` first",
        )
    marker = _read_json(folder / "textkd_model.json")
    role = "teacher" if marker.get("kind") == "teacher" else "student"
    row = model_summary(folder, role)
    evaluation = _read_json(folder / EVAL_TEST)
    labels = _labels(folder)
    teacher_dir = Path(marker["teacher"]) if role == "student" and marker.get("teacher") else None
    teacher = model_summary(teacher_dir, "teacher") if teacher_dir and is_evaluated(teacher_dir) else None
    teacher_marker = _read_json(teacher_dir / "textkd_model.json") if teacher else {}
    dataset = evaluation.get("dataset") or (marker.get("data") or {}).get("name") or "a local dataset"

    lines = _front_matter(role) + [f"# {folder.name}", ""]
    lines += [_summary(role, marker, row, dataset, len(labels), teacher_dir, teacher_marker), ""]
    lines += ["## Test results", "", *_results_table(row, teacher), ""]
    rows = evaluation.get("rows") or evaluation.get("num_examples")
    chosen = (
        f"the epoch with the best validation macro-F1 (epoch {row['best_epoch']} of {row['epochs']})"
        if row.get("best_epoch")
        else "validation"
    )
    lines += [
        f"On the {dataset} test split ({_int(rows)} texts); the weights were chosen on {chosen}, and test "
        "was only evaluated. Per-class scores, the confusion matrix and calibration are in `eval_test.json`.",
        "",
    ]
    lines += ["## Training", "", *_settings_table(row["hyperparameters"], marker), ""]
    lines += ["The full resolved configuration is in `config.yaml`, one line per epoch in `metrics.jsonl`.", ""]
    lines += _usage(folder.name)
    if labels:
        lines += [f"## Labels ({len(labels)})", "", ", ".join(f"`{name}`" for name in labels), ""]
    from textkd import __version__

    lines += [
        f"*Written by textkd {__version__} from the files in this folder; `textkd card {folder.name}` writes "
        "it again.*",
        "",
    ]
    return "\n".join(lines)


def _front_matter(role: str) -> list[str]:
    """The YAML header the Hugging Face Hub reads (library, task, tags, metrics)."""
    tags = ["textkd", "text-classification"] + (["knowledge-distillation"] if role == "student" else [])
    return [
        "---",
        "library_name: textkd",
        "pipeline_tag: text-classification",
        "tags:",
        *(f"- {t}" for t in tags),
        "metrics:",
        "- accuracy",
        "- f1",
        "---",
        "",
    ]


def _usage(name: str) -> list[str]:
    return [
        "## Use",
        "",
        "```bash",
        "pip install textkd",
        f'textkd predict {name} "your text here"',
        "```",
        "",
        "```python",
        "import textkd  # registers the textkd model classes with transformers",
        "from transformers import pipeline",
        "",
        f'classify = pipeline("text-classification", model="{name}")',
        'print(classify("your text here"))',
        "```",
        "",
    ]


def _summary(
    role: str,
    marker: dict[str, Any],
    row: dict[str, Any],
    dataset: str,
    classes: int,
    teacher_dir: Path | None,
    teacher_marker: dict[str, Any],
) -> str:
    size = f"{_int(row['params'])} parameters, {row['size_mb']:.1f} MiB"
    what = f"{classes} classes" if classes else "its classes"
    if role == "teacher":
        backbone = marker.get("backbone") or row["hyperparameters"].get("backbone") or "a"
        how = "trained from scratch" if backbone == "scratch" else "fine-tuned"
        return (
            f"A text classifier {how} with textkd on **{dataset}** ({what}): the `{backbone}` backbone "
            f"with {row['hyperparameters'].get('pooling') or 'mean'} pooling and a classification head "
            f"({size}). It is a teacher for distillation into smaller students."
        )
    method = marker.get("method") or row["hyperparameters"].get("method") or "none"
    preset = marker.get("preset") or row["hyperparameters"].get("preset")
    text = f"A `{preset}` student ({size}) trained with textkd on **{dataset}** ({what}) by "
    text += _METHODS.get(method, method)
    if method != "none" and teacher_dir is not None:
        backbone = teacher_marker.get("backbone")
        from textkd.hub import hub_repo_id

        repo_id = hub_repo_id(teacher_dir)
        name = f"[`{repo_id}`](https://huggingface.co/{repo_id})" if repo_id else f"`{teacher_dir.name}`"
        text += f", from the teacher {name}" + (f" (`{backbone}` backbone)" if backbone else "")
    text += "."
    if marker.get("loss"):
        text += f" Loss: `{marker['loss']}`."
    return text


def _results_table(row: dict[str, Any], teacher: dict[str, Any] | None) -> list[str]:
    columns = ["this model"] + (["teacher"] if teacher else [])
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]

    def add(name: str, key: str, fmt) -> None:
        values = [row.get(key)] + ([teacher.get(key)] if teacher else [])
        if all(v is None for v in values):
            return
        lines.append(f"| {name} | " + " | ".join("-" if v is None else fmt(v) for v in values) + " |")

    add("accuracy", "accuracy", lambda v: f"{v:.4f}")
    add("macro-F1", "macro_f1", lambda v: f"{v:.4f}")
    if teacher:
        lines.append(f"| agreement with the teacher | {_fraction(row.get('agreement_with_teacher'))} | |")
    add("parameters", "params", _int)
    add("weights on disk (MiB)", "size_mb", lambda v: f"{v:.1f}")
    add("CPU latency p50, batch 1, 1 thread (ms)", "latency_p50_ms", lambda v: f"{v:.2f}")
    return lines


def _settings_table(hyper: dict[str, Any], marker: dict[str, Any]) -> list[str]:
    lines = ["| setting | value |", "|---|---|"]
    for key, name in _SETTINGS.items():
        value = hyper.get(key)
        unset = (key in ("augment", "ema_decay") and not value) or (key == "class_weights" and value == "none")
        if value is None or value == [] or unset:
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        if key == "patience" and value == 0:
            value = "0 (no early stop)"
        lines.append(f"| {name} | {value} |")
    transfer = marker.get("transfer_set") or {}
    if transfer.get("teacher_labelled_rows"):
        lines.append(
            f"| transfer set | {_int(transfer['labelled_rows'])} labelled rows + "
            f"{_int(transfer['teacher_labelled_rows'])} texts labelled by the teacher |"
        )
    return lines


def _labels(folder: Path) -> list[str]:
    config = _read_json(folder / "config.json")
    id2label = config.get("id2label") or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _int(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "-"


def _fraction(value: Any) -> str:
    return f"{value:.4f}" if value is not None else "-"
