"""The `textkd` command line: thin typer commands that parse arguments and call `textkd.api`.

Any config value can be overridden with a dotted option after the named ones, e.g.
`textkd teacher recipes/banking77.yaml --train.lr 1e-4 --data.max_len 64`. In `textkd teacher`,
`--train.*` means `--teacher.train.*`; in `textkd distill`, it means `--student.train.*`.
User errors print one line and exit with code 2.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.table import Table

from textkd import api
from textkd.config import (
    Config,
    DataConfig,
    check_config,
    config_yaml,
    load_config,
    parse_cli_overrides,
)
from textkd.errors import TextkdError
from textkd.utils import results_console

app = typer.Typer(
    name="textkd",
    help="Distil a large text classifier into a small fast one, and prove the trade.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="List dataset presets and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = results_console()


def _version(show: bool) -> None:
    """`--version`: textkd's version and the versions a bug report needs, then exit."""
    if not show:
        return
    import platform

    import torch
    import transformers

    from textkd import __version__

    typer.echo(
        f"textkd {__version__} (torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {platform.python_version()})"
    )
    raise typer.Exit()


@app.callback()
def _setup(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print textkd's version (with torch's, transformers' and python's) and exit.",
    ),
) -> None:
    """Distil a large text classifier into a small fast one, and prove the trade."""
    quiet_transformers()


err_console = Console(stderr=True)
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}
_DATA_DIR_HELP = "Folder holding <preset>/... files (default $TEXTKD_DATA_DIR, else download once)."
PREDICT_PROGRESS_TEXTS = 1000  # predict shows a progress bar (on stderr) from this many texts


def user_errors(func):
    """Turn `TextkdError` into one line on stderr and exit code 2, with no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TextkdError as err:
            err_console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def split_recipe(args: list[str]) -> tuple[Path | None, list[str]]:
    """The optional recipe file (a first word that is not an option) and the dotted overrides after it."""
    if args and not args[0].startswith("-"):
        return Path(args[0]), args[1:]
    return None, list(args)


def _config(recipe: Path | None, extra: list[str], named: dict[str, Any], alias: str | None = None) -> Config:
    """Defaults <- recipe <- named options <- dotted overrides (last wins)."""
    overrides = {k: v for k, v in named.items() if v is not None}
    overrides.update(parse_cli_overrides(extra, {"train": alias} if alias else None))
    return load_config(recipe, overrides)


_PRINT_CONFIG_HELP = "Print the resolved config as YAML (a recipe) and exit: no data is read, nothing is trained."


def _print_config(cfg: Config, sections: tuple[str, ...]) -> None:
    """Check `sections` as the command would, then write the config to stdout unstyled (redirect it to a file)."""
    check_config(cfg, sections)
    typer.echo(config_yaml(cfg), nl=False)


# ------------------------------------------------------------------------------------------------ data


@data_app.command("list")
@user_errors
def data_list(data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP)) -> None:
    """Show the built-in dataset presets and where each one is found."""
    from textkd.data.presets import list_presets
    from textkd.data.stats import render_presets

    console.print(render_presets(list_presets(data_dir)))


@data_app.command("show")
@user_errors
def data_show(
    name: str | None = typer.Argument(None, help="A preset name (see `textkd data list`)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    variant: str | None = typer.Option(None, help="Preset variant (clinc150: full, small, imbalanced, plus)."),
    train: str | None = typer.Option(None, help="Training file (CSV, TSV, JSONL, JSON) instead of a preset."),
    validation: str | None = typer.Option(None, help="Validation file (default: carved from train)."),
    test: str | None = typer.Option(None, help="Test file."),
    text_column: str = typer.Option("text", help="Column or key holding the text."),
    label_column: str = typer.Option("label", help="Column or key holding the label."),
    label_file: str | None = typer.Option(None, help="Label list: one name per line, or a JSON list."),
    empty_texts: str = typer.Option("drop", help="Empty or whitespace-only texts: drop (with a warning) or error."),
    tokenizer: str | None = typer.Option(None, help="Tokenizer for length percentiles (name or path)."),
    max_len: int = typer.Option(128, min=1, help="Report the share of texts longer than this many tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Split sizes, labels, class balance, token lengths and duplicates of a dataset."""
    from textkd.data.stats import dataset_stats, render_stats

    if name is None and train is None:
        raise TextkdError("name a preset or pass --train FILE --test FILE", hint="see `textkd data list`")
    data = DataConfig(
        name=name or "files",
        data_dir=data_dir,
        variant=variant,
        train=train,
        validation=validation,
        test=test,
        text_column=text_column,
        label_column=label_column,
        label_file=label_file,
        max_len=max_len,
        empty_texts=empty_texts,
    )
    splits = api.load_data(data)
    tok = _load_tokenizer(tokenizer) if tokenizer else None
    stats = dataset_stats(splits, tokenizer=tok, max_len=max_len)
    if as_json:
        console.print_json(json.dumps(stats, default=str))
    else:
        console.print(render_stats(stats))


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    from textkd.models.backbones import resolve_backbone

    try:
        return AutoTokenizer.from_pretrained(resolve_backbone(name))
    except OSError as err:
        raise TextkdError(f"cannot load tokenizer {name!r}: {err}".splitlines()[0]) from None


# --------------------------------------------------------------------------------------------- teacher


@app.command("teacher", context_settings=OVERRIDES)
@user_errors
def teacher_cmd(
    ctx: typer.Context,
    data: str | None = typer.Option(None, "--data", help="Dataset preset (or 'files' with --data.train ...)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    backbone: str | None = typer.Option(None, help="minilm-l6, a local path, a hub id, or 'scratch'."),
    pooling: str | None = typer.Option(None, help="mean (masked mean of the last layer) or cls."),
    head: str | None = typer.Option(None, help="mlp (Dropout, Linear, GELU, Dropout, Linear) or linear."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output folder (default runs/<name>/teacher)."),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in the output folder."),
    refit: bool | None = typer.Option(
        None,
        "--refit/--no-refit",
        help="Pick the epoch count on validation, then train again on train + "
        "validation for that many epochs (the selection run stays in "
        "<output>/selection).",
    ),
    print_config: bool = typer.Option(False, "--print-config", help=_PRINT_CONFIG_HELP),
) -> None:
    """Fine-tune a teacher: backbone + pooling + head, selected on validation macro-F1.

    Usage: textkd teacher [RECIPE.yaml] [OPTIONS] [--section.key VALUE ...]

    Example: textkd teacher recipes/banking77.yaml --data-dir ../shared/data --train.epochs 10
    """
    named = {
        "data.name": data,
        "data.data_dir": data_dir,
        "teacher.backbone": backbone,
        "teacher.pooling": pooling,
        "teacher.head": head,
        "teacher.refit": refit,
    }
    recipe, extra = split_recipe(ctx.args)
    cfg = _config(recipe, extra, named, alias="teacher.train")
    if print_config:
        return _print_config(cfg, ("data", "teacher"))
    result = api.train_teacher(cfg, output, resume=resume)
    _print_result("teacher", result)


# --------------------------------------------------------------------------------------------- distill


@app.command("distill", context_settings=OVERRIDES)
@user_errors
def distill_cmd(
    ctx: typer.Context,
    teacher: list[Path] = typer.Option(
        ...,
        "--teacher",
        help="A trained teacher folder or a Hugging "
        "Face hub repo id. Repeat it for several teachers: "
        "their soft targets are averaged (weights: "
        "--kd.teacher-weights 2,1).",
    ),
    student: str | None = typer.Option(
        None, help="Student preset: tinybert-4l-312, bert-mini-4l-256, bert-tiny-2l-128, bilstm, bilstm-zh."
    ),
    method: str | None = typer.Option(
        None,
        help="none | hard | soft | soft+hidden. soft = alpha * T^2 * "
        "KL(teacher_T || student_T) + (1 - alpha) * CE(gold); alpha "
        "weights the KD term (torchdistill puts it on CE).",
    ),
    compare: str | None = typer.Option(
        None, help="Comma-separated methods to run as a fair grid, e.g. none,hard,soft,soft+hidden."
    ),
    data: str | None = typer.Option(None, "--data", help="Dataset preset (default: the recipe's)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    output: Path | None = typer.Option(None, "--output", "-o", help="Grid folder (default runs/<name>/students)."),
    augment: int | None = typer.Option(
        None,
        help="KD methods: N augmented texts per training text (masking, "
        "embedding-neighbour swaps, n-grams), labelled by the teacher.",
    ),
    unlabeled: list[Path] | None = typer.Option(
        None, help="KD methods: a text file (one text per line) the teacher labels for the transfer set; repeatable."
    ),
    resume: bool = typer.Option(
        False,
        help="Continue unfinished students from their checkpoints and reuse "
        "finished ones (refused if their saved config differs).",
    ),
    seeds: str | None = typer.Option(
        None,
        help="Train the grid once per seed (e.g. 42,43,44), each under <output>/seed<N>/, and summarise: "
        "mean and spread of every method, and each KD method's gain over none seed by seed.",
    ),
    print_config: bool = typer.Option(False, "--print-config", help=_PRINT_CONFIG_HELP),
) -> None:
    """Distil the teacher into a student with one or more KD methods (same seed, data order and schedule).

    Usage: textkd distill --teacher DIR [RECIPE.yaml] [OPTIONS] [--section.key VALUE ...]

    Example: textkd distill --teacher runs/banking77/teacher --student tinybert-4l-312 --compare none,soft
    """
    named = {
        "data.name": data,
        "data.data_dir": data_dir,
        "student.preset": student,
        "distill.method": method,
        "distill.augment": augment,
        "distill.unlabeled": [str(p) for p in unlabeled] if unlabeled else None,
        "distill.teachers": [str(p) for p in teacher[1:]] or None,
    }
    recipe, extra = split_recipe(ctx.args)
    cfg = _config(recipe, extra, named, alias="student.train")
    if print_config:
        return _print_config(cfg, ("data", "student", "distill"))
    methods = [m.strip() for m in compare.split(",") if m.strip()] if compare else None
    if seeds is not None:
        from textkd.seeds import distill_seeds, parse_seeds

        out = distill_seeds(cfg, teacher[0], output, seeds=parse_seeds(seeds), methods=methods, resume=resume)
        for seed, results in out.results.items():
            for result in results:
                _print_result(f"{cfg.student.preset} / {result.method} / seed {seed}", result)
        if _first_process():
            console.print(_seeds_table(out.summary))
            console.print(f"summary: {out.path}")
        return
    results = api.distill(cfg, teacher[0], output, methods=methods, resume=resume)
    for result in results:
        _print_result(f"{cfg.student.preset} / {result.method}", result)


def _seeds_table(summary: dict[str, Any]) -> Table:
    """Mean +- standard deviation over the seeds of each method, and each KD method's paired gain over none."""
    n = len(summary["seeds"])
    table = Table(title=f"{summary['student']} over {n} seeds ({', '.join(map(str, summary['seeds']))}): test")
    for column in ("method", "accuracy (%)", "macro-F1 (%)", "accuracy gain over none (points)", "seeds with a gain"):
        table.add_column(column, justify="left" if column == "method" else "right")

    def spread(s: dict[str, Any], scale: float = 1.0, sign: str = "") -> str:
        std = f" ± {s['std'] * scale:.2f}" if s["std"] is not None else ""
        return f"{s['mean'] * scale:{sign}.2f}{std} ({s['min'] * scale:{sign}.2f} to {s['max'] * scale:{sign}.2f})"

    for method, row in summary["methods"].items():
        gain = summary["gain_over_none"].get(method)
        table.add_row(
            method,
            spread(row["accuracy"], 100),
            spread(row["macro_f1"], 100),
            spread(gain["accuracy"], 100, "+") if gain else "",
            f"{gain['accuracy']['seeds_above_zero']} of {n}" if gain else "",
        )
    return table


@app.command("sweep", context_settings=OVERRIDES)
@user_errors
def sweep_cmd(
    ctx: typer.Context,
    teacher: Path = typer.Option(..., "--teacher", help="A trained teacher folder or a hub repo id."),
    trials: int = typer.Option(20, help="Trials to run (trial 0 is the configuration as given)."),
    method: str = typer.Option("soft", help="KD method searched: soft | hard | soft+hidden."),
    student: str | None = typer.Option(None, help="Student preset (default: the recipe's)."),
    data: str | None = typer.Option(None, "--data", help="Dataset preset (default: the recipe's)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    output: Path | None = typer.Option(None, "--output", "-o", help="Sweep folder (default runs/<name>/sweep)."),
    timeout: float | None = typer.Option(None, help="Stop starting trials after this many seconds."),
    seed: int = typer.Option(0, help="Seed of the sampler."),
    print_config: bool = typer.Option(False, "--print-config", help=_PRINT_CONFIG_HELP),
) -> None:
    """Search T, alpha, learning rate and epochs on the validation split with Optuna (pruned early).

    Writes best.yaml (a recipe with the best settings), trials.jsonl, sweep.json, trials.png and report.md;
    the best trial's student is evaluated on test once, after the search.

    Example: textkd sweep --teacher runs/banking77/teacher recipes/banking77.yaml --trials 20
    """
    from textkd.sweep import sweep

    named = {"data.name": data, "data.data_dir": data_dir, "student.preset": student}
    recipe, extra = split_recipe(ctx.args)
    cfg = _config(recipe, extra, named, alias="student.train")
    if print_config:
        return _print_config(cfg, ("data", "student", "distill"))
    result = sweep(cfg, teacher, trials=trials, method=method, output_dir=output, seed=seed, timeout_s=timeout)
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    console.print(
        f"best of {len(result.trials)} trials: {shown}: validation macro-F1 {result.best_value:.4f} "
        f"(as given: {result.default_value:.4f}); test accuracy {result.test_metrics['accuracy']:.4f}, "
        f"macro-F1 {result.test_metrics['macro_f1']:.4f}"
    )
    console.print(f"recipe: {result.output_dir / 'best.yaml'}; report: {result.output_dir / 'report.md'}")


@app.command("label")
@user_errors
def label_cmd(
    teacher: Path = typer.Argument(..., help="A trained teacher folder or a hub repo id."),
    texts: Path = typer.Option(..., "--texts", help="UTF-8 text file, one text per line (any size)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Folder for logits.npy (default: the teacher's cache, where distill finds it)."
    ),
    max_len: int | None = typer.Option(None, min=1, help="Tokens per text (default: the teacher's training setting)."),
    pooled: bool = typer.Option(False, help="Also store pooled sentence vectors (for soft+hidden)."),
    batch_size: int = typer.Option(256, min=1, help="Texts per forward pass."),
    chunk_size: int = typer.Option(8192, min=1, help="Texts read, labelled and written at a time (bounds memory)."),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)."),
) -> None:
    """Label a large text corpus with the teacher, streaming to memory-mapped arrays (logits.npy).

    Runs in several processes (and GPUs) under `accelerate launch` or `torchrun`: each labels its share.

    Example: textkd label runs/banking77/teacher --texts unlabeled.txt
    """
    out = api.label(
        teacher,
        texts,
        output,
        max_len=max_len,
        need_pooled=pooled,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
    )
    console.print(f"{out['rows']:,} texts labelled -> {out['folder']} ({out['wall_s']:.1f} s)")


def _first_process() -> bool:
    """False in every process but the first when several train together (accelerate launch, torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def _print_result(title: str, result: api.TrainResult) -> None:
    if not _first_process():  # print once
        return
    m = result.test_metrics
    console.print(
        f"[bold]{title}[/]: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
        f"(best epoch {result.fit.best_epoch}, {result.fit.wall_s:.0f} s, {result.params:,} params, "
        f"{result.size_mb:.1f} MB) -> {result.output_dir}"
    )


# ------------------------------------------------------------------------------------ evaluate, predict


@app.command("evaluate")
@user_errors
def evaluate_cmd(
    model: Path = typer.Argument(..., help="A saved model folder or a hub repo id."),
    data: str | None = typer.Option(None, "--data", help="Dataset preset (default: the model's own)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    split: str = typer.Option("test", help="train | validation | test."),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="A labelled file of your own instead (CSV, TSV, "
        "JSON Lines, JSON): the model's label names or "
        "ids; MODEL may be an ONNX export. Nothing is "
        "written.",
    ),
    text_column: str = typer.Option("text", "--text-column", help="With --file: the text column or JSON key."),
    label_column: str = typer.Option("label", "--label-column", help="With --file: the label column or JSON key."),
    oos_label: str | None = typer.Option(
        None,
        "--oos-label",
        help="With --file: the out-of-scope class (oos for clinc150), for in-scope accuracy and oos recall.",
    ),
    max_len: int | None = typer.Option(None, min=1, help="Tokens per text (default: the training setting)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a pickle checkpoint (.bin, .pt); loading one can run arbitrary code."
    ),
) -> None:
    """Accuracy, macro/weighted F1, per-class scores, confusion matrix and calibration of a model.

    Examples: textkd evaluate runs/banking77/teacher --split validation;
    textkd evaluate runs/banking77/students/bilstm-soft --file march.csv --label-column intent
    """
    from textkd.hub import model_folder

    model = model_folder(model)
    if file is not None:
        if data is not None or data_dir is not None or split != "test":
            raise TextkdError("--file replaces the dataset", hint="drop --data, --data-dir and --split")
        metrics = api.evaluate_file(
            model,
            file,
            text_column=text_column,
            label_column=label_column,
            max_len=max_len,
            out_of_scope_label=oos_label,
            trust_pickle=trust_pickle,
            progress=True,
        )
        if as_json:
            console.print_json(json.dumps(metrics, default=str))
            return
        console.print(_metrics_table(metrics))
        return
    cfg = None
    if data is not None:
        cfg = DataConfig(name=data, data_dir=data_dir)
    elif data_dir is not None:
        cfg = api._model_data_config(model)
        cfg.data_dir = data_dir
    metrics = api.evaluate(model, cfg, split=split, max_len=max_len, trust_pickle=trust_pickle)
    if as_json:
        console.print_json(json.dumps(metrics, default=str))
        return
    console.print(_metrics_table(metrics))
    console.print(f"written to {model / api.EVAL_FILE.format(split=split)}")


WEAKEST_CLASSES = 5  # evaluate lists this many classes with the lowest F1, and as many of the largest confusions


def _metrics_table(m: dict[str, Any]) -> Group:
    """The headline metrics, then (with more classes than WEAKEST_CLASSES) the weakest classes and the largest
    confusions, so a user sees where the model fails without opening the JSON."""
    from textkd.evaluation.metrics import top_confusions

    where = Path(m["dataset"]).name if m["split"] == "file" else f"{m['dataset']} / {m['split']}"
    table = Table(title=f"{where} ({m['rows']:,} rows)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "ece",
        "in_scope_accuracy",
        "oos_recall",
        "agreement_with_teacher",
    ):
        if m.get(key) is not None:
            table.add_row(key, f"{m[key]:.4f}")
    present = {name: row for name, row in m["per_class"].items() if row["support"] > 0}
    if len(present) <= WEAKEST_CLASSES:
        return Group(table)
    weakest = Table(title=f"lowest F1 ({WEAKEST_CLASSES} of {len(present)} classes in the data)")
    for column in ("class", "f1", "precision", "recall", "support"):
        weakest.add_column(column, justify="left" if column == "class" else "right")
    for name, row in sorted(present.items(), key=lambda item: (item[1]["f1"], item[0]))[:WEAKEST_CLASSES]:
        weakest.add_row(
            name, f"{row['f1']:.3f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['support']:,}"
        )
    confused = Table(title="largest confusions")
    for column in ("true", "predicted", "rows"):
        confused.add_column(column, justify="right" if column == "rows" else "left")
    for true, predicted, count in top_confusions(m["confusion_matrix"], list(m["per_class"]), k=WEAKEST_CLASSES):
        confused.add_row(true, predicted, f"{count:,}")
    return Group(table, weakest, confused)


@app.command("predict")
@user_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="A saved model folder, an export folder or a hub repo id."),
    texts: list[str] = typer.Argument(None, help="Texts to classify."),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="A file with one text per line (- reads stdin), or a CSV, TSV, JSON Lines or JSON table.",
    ),
    text_column: str = typer.Option(
        "text",
        "--text-column",
        help="With a table --file: the text column (a name, or an index for a file without a header).",
    ),
    top_k: int = typer.Option(3, "--top-k", min=1, help="How many labels to show per text."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: model, latency_ms, predictions."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the predictions to a .csv, .tsv or .jsonl file, one row per text, in order."
    ),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a pickle checkpoint (.bin, .pt); loading one can run arbitrary code."
    ),
) -> None:
    """Top-k labels with probabilities for each text, and the latency of the call."""
    if output is not None:  # before the model loads
        api.check_predictions_path(output)
        if as_json:
            raise TextkdError("--output writes the predictions to a file; --json prints them", hint="pick one")
    items = list(texts or [])
    if file is not None:
        items += _read_texts(file, text_column)
    result = api.predict(
        model, items, top_k=top_k, trust_pickle=trust_pickle, progress=len(items) >= PREDICT_PROGRESS_TEXTS
    )
    if output is not None:
        api.write_predictions(result["predictions"], output)
        count = len(result["predictions"])
        console.print(
            f"{count:,} prediction{'s' if count != 1 else ''} -> {output} ({result['latency_ms']:.1f} ms)",
            highlight=False,
        )
        return
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    for pred in result["predictions"]:
        labels = ", ".join(f"{p['label']} {p['score']:.3f}" for p in pred["labels"])
        console.print(f"{pred['text'][:80]!r}: {labels}", highlight=False)
    count = len(result["predictions"])
    console.print(f"{count} text{'s' if count != 1 else ''} in {result['latency_ms']:.1f} ms", style="dim")


def _read_texts(path: Path, text_column: str) -> list[str]:
    """The texts of a table file (by its extension), else the non-blank lines of a UTF-8 file, stripped; `-` is
    standard input."""
    from textkd.data.readers import TABLE_SUFFIXES, read_texts

    if str(path) == "-":
        return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    if path.suffix.lower() in TABLE_SUFFIXES:
        return read_texts(path, text_column=text_column)
    if not path.is_file():
        raise TextkdError("file not found", path=path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise TextkdError(f"not UTF-8 at byte {err.start}", path=path, hint="re-encode the file as UTF-8") from None
    return [line.strip() for line in lines if line.strip()]


def main() -> None:
    """Console-script entry point."""
    app()


def quiet_transformers() -> None:
    """textkd shows its own progress; transformers' per-load bars and info logs are noise here."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# ------------------------------------------------------------------------------------------ run, report


@app.command("run", context_settings=OVERRIDES)
@user_errors
def run_cmd(
    ctx: typer.Context,
    teacher: Path | None = typer.Option(None, "--teacher", help="Reuse this trained teacher instead of training one."),
    name: str | None = typer.Option(None, "--name", help="Run folder under output_dir (default: the dataset name)."),
    data: str | None = typer.Option(None, "--data", help="Dataset preset (default: the recipe's)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    print_config: bool = typer.Option(False, "--print-config", help=_PRINT_CONFIG_HELP),
) -> None:
    """The whole pipeline: data -> teacher -> students x methods -> test -> export -> bench -> report.

    Usage: textkd run [RECIPE.yaml] [OPTIONS] [--section.key VALUE ...]

    Everything goes under runs/<name>/; running it again skips finished stages and resumes interrupted
    training. Example: textkd run recipes/demo.yaml --run.students bilstm --run.methods none,soft
    """
    from textkd import pipeline

    recipe, extra = split_recipe(ctx.args)
    overrides = {k: v for k, v in {"data.name": data, "data.data_dir": data_dir}.items() if v is not None}
    overrides.update(parse_cli_overrides(extra))
    cfg = pipeline.load_run_config(recipe, overrides)
    if print_config:
        pipeline.check_run_config(cfg, teacher_given=teacher is not None)
        return _print_config(cfg, ())
    pipeline.run(cfg, teacher_dir=teacher, name=name)


@app.command("report")
@user_errors
def report_cmd(run_dir: Path = typer.Argument(..., help="A folder written by `textkd run`.")) -> None:
    """Rebuild results.json, report.md and report.html (with plots) from the files in a run folder."""
    from textkd.evaluation.report import build_report

    paths = build_report(run_dir)
    console.print(f"report: {paths['html']}  (also {paths['markdown'].name}, {paths['results'].name})")


@app.command("card")
@user_errors
def card_cmd(
    model_dirs: list[Path] = typer.Argument(..., help="Model folders written by `textkd teacher` or `textkd distill`."),
    force: bool = typer.Option(False, "--force", help="Replace a README.md that textkd did not write."),
) -> None:
    """Write each model's card (README.md): test figures next to the teacher's, training settings, usage, labels.

    Training writes the card and `textkd bench` adds the latency to it; run this for a folder from an older
    textkd, or after `textkd evaluate` on a new test set.
    Example: textkd card runs/banking77/teacher runs/banking77/students/bilstm-soft
    """
    from textkd.evaluation.card import write_model_card

    for model_dir in model_dirs:
        console.print(f"model card: {write_model_card(model_dir, force=force)}")


@app.command("push")
@user_errors
def push_cmd(
    model_dir: Path = typer.Argument(..., help="A model folder written by `textkd teacher` or `textkd distill`."),
    repo_id: str = typer.Argument(..., help="The hub repo to upload to, owner/name (created if needed)."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    token: str | None = typer.Option(
        None, "--token", help="A hub write token (default: `hf auth login`'s or $HF_TOKEN)."
    ),
) -> None:
    """Upload a model to the Hugging Face hub with its card (README.md), figures and ONNX export.

    Leaves out training state (checkpoint/), a refit's selection run and the teacher-output cache.
    Example: textkd push runs/banking77/students/bilstm/bilstm-soft my-org/banking77-bilstm
    """
    from textkd.hub import push_to_hub

    console.print(f"pushed to {push_to_hub(model_dir, repo_id, private=private, token=token)}")


# ----------------------------------------------------------------------------------------------- serve


@app.command("serve")
@user_errors
def serve_cmd(
    model: Path = typer.Argument(..., help="A saved textkd model folder, an ONNX export folder or a hub repo id."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 opens it to the network)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    backend: str = typer.Option("auto", help="auto (ONNX when the folder holds model.onnx) | torch | onnx."),
    max_texts: int | None = typer.Option(None, help="Texts per request; more get 413 (default 64)."),
    max_chars: int | None = typer.Option(None, help="Characters per text; longer get 413 (default 5000)."),
    max_body_bytes: int | None = typer.Option(None, help="Request body bytes; more get 413 (default 2 MiB)."),
    max_batch: int | None = typer.Option(None, help="Texts per merged forward pass (default 64)."),
    max_wait_ms: float | None = typer.Option(
        None, help="How long a request waits for others to share its forward pass (default 5)."
    ),
    threads: int | None = typer.Option(None, min=1, help="CPU threads per forward pass (default: the runtime's)."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a pickle checkpoint (.bin, .pt); loading one can run arbitrary code."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level; warning hides the access log."),
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health, GET /labels, docs at /docs, a page at /.

    Example: textkd serve runs/banking77/students/bilstm-soft --port 8000
    """
    from textkd.serving import serve

    limits = {
        "max_texts": max_texts,
        "max_chars": max_chars,
        "max_body_bytes": max_body_bytes,
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
    }
    serve(
        model,
        host=host,
        port=port,
        log_level=log_level,
        backend=backend,
        threads=threads,
        trust_pickle=trust_pickle,
        **{k: v for k, v in limits.items() if v is not None},
    )


# ---------------------------------------------------------------------------------------- bench, export


@app.command("bench")
@user_errors
def bench_cmd(
    models: list[Path] = typer.Argument(
        ..., help="Model folders or hub repo ids; the first is the speed-up baseline (the teacher)."
    ),
    data: str | None = typer.Option(
        None, "--data", help="Dataset whose test texts are timed (default: the first model's own)."
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    runs: int = typer.Option(100, help="Timed batch-1 calls per backend and thread setting (after 10 warm-up)."),
    threads: str = typer.Option("1,all", help="Comma-separated thread counts; all = every physical core."),
    backends: str = typer.Option("torch,onnx,onnx-int8", help="Comma-separated: torch, onnx, onnx-int8."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Parameters, size, CPU latency (p50/p95 at batch 1) and throughput per model, backend and thread count.

    ONNX backends export each model into MODEL/onnx first (reused while the weights match); results are also
    written to MODEL/bench.json. Example: textkd bench runs/banking77/teacher runs/banking77/students/bilstm-soft
    """
    from textkd.evaluation.bench import bench, render_bench

    cfg = None
    if data is not None:
        cfg = DataConfig(name=data, data_dir=data_dir)
    elif data_dir is not None:
        cfg = api._model_data_config(models[0])
        cfg.data_dir = data_dir
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    result = bench(models, data=cfg, runs=runs, threads=_thread_counts(threads), backends=chosen)
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    console.print(render_bench(result))


def _thread_counts(text: str) -> list[int | None]:
    counts: list[int | None] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item != "all" and not (item.isdigit() and int(item) > 0):
            raise TextkdError(f"bad --threads value {item!r}", hint="positive integers or all, e.g. 1,all")
        counts.append(None if item == "all" else int(item))
    return counts


@app.command("export")
@user_errors
def export_cmd(
    model: Path = typer.Argument(..., help="A saved model folder or a hub repo id."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Export folder (default MODEL/onnx)."),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Export to ONNX (the only format so far)."),
    int8: bool = typer.Option(False, "--int8", help="Also write model.int8.onnx (dynamic int8 quantisation)."),
    allow_drift: bool = typer.Option(
        False,
        "--allow-drift",
        help="Keep an int8 export whose predictions agree with PyTorch on fewer than 99% of texts.",
    ),
    opset: int = typer.Option(17, help="ONNX opset, 14 to 20."),
) -> None:
    """Export a model to a self-contained ONNX folder (+ int8) and check it against PyTorch.

    Example: textkd export runs/banking77/students/bilstm-soft --int8
    """
    from textkd.export.onnx import export_onnx

    if not onnx:
        raise TextkdError("nothing to export", hint="ONNX is the only format so far: drop --no-onnx")
    info = export_onnx(model, output, int8=int8, opset=opset, allow_drift=allow_drift)
    console.print(
        f"[bold]exported[/] {info['architecture']} -> {info['output_dir']} "
        f"({', '.join(f'{name} {mb:.2f} MB' for name, mb in info['files'].items())})"
    )
    console.print(f"parity on {info['parity_texts']}", style="dim")
    for key in ("fp32", "int8"):
        if key in info:
            console.print(
                f"{key}: max |logit diff| {info[key]['max_abs_diff']:.2g}, "
                f"argmax agreement {info[key]['argmax_agreement']:.2%}"
            )
    if "accuracy" in info:
        console.print("accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in info["accuracy"].items()))
    for reason in info["drift_reasons"]:
        console.print(f"drift (allowed): {reason}", style="bold red")


if __name__ == "__main__":
    main()
