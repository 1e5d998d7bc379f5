"""`textkd run`: data -> teacher -> every (student x method) -> test evaluation -> export -> bench -> report.

Everything goes under `runs/<name>/`. The run is planned as a list of stages, each with a completion
marker, so running it again skips finished stages and resumes interrupted training from its checkpoint:

- teacher: `teacher/` (or a reused `--teacher DIR`); done when textkd_model.json and eval_test.json exist;
- distill: `students/<preset>-<method>/` (`students-<init>/...` for `preset@init`); done likewise;
- export: `<model>/onnx/` for the teacher and every student (ONNX, int8, parity); done when export.json exists;
- bench: `bench.json` in every model folder; done when it exists;
- report: `results.json`, `report.md`, `report.html`, `plots/`; always rebuilt (cheap).

A finished stage whose saved config differs from the current one (say, other epochs) raises `ConfigError`:
its numbers would not describe the recipe. Use another `--name`, or delete that folder to retrain it.

Example:
    >>> cfg = load_run_config("recipes/demo.yaml")  # doctest: +SKIP
    >>> run_dir = run(cfg)  # doctest: +SKIP
    >>> (run_dir / "report.html").is_file()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from textkd import api
from textkd.config import (
    Config,
    RunConfig,
    StudentConfig,
    at_least,
    check_config,
    check_same_config,
    dotted_to_nested,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from textkd.data.dataset import DatasetSplits
from textkd.errors import ConfigError, ModelLoadError, TextkdError
from textkd.evaluation.report import COLUMNS, EXPORT_DIRNAME, MANIFEST, build_report, machine_info, table_rows
from textkd.utils import atomic_write_json, results_console

console = results_console()


def run_settings(cfg: Config) -> RunConfig:
    """The `run` section of a config."""
    return cfg.run


def load_run_config(recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """`load_config` (kept for callers of the pipeline API; `Config.run` holds the `run:` section).

    Example:
        >>> cfg = load_run_config(overrides={"run.methods": "none,soft,hard"})
        >>> run_settings(cfg).methods
        ['none', 'soft', 'hard']
    """
    return load_config(recipe, overrides)


# --------------------------------------------------------------------------------------------- stages


@dataclass
class Stage:
    """One step of the plan: `action` runs it unless `done` says its outputs are already complete."""

    name: str
    kind: str  # teacher | distill | export | bench: finished stages of a kind estimate the others
    done: bool
    action: Callable[[], Any]


@dataclass
class StudentRun:
    """One (student x method) cell of the grid and where it lives."""

    spec: str  # "preset" or "preset@init", as written in run.students
    method: str
    cfg: Config  # the config this cell trains with (per-student overrides applied)
    output_dir: Path

    @property
    def name(self) -> str:
        return f"{self.spec} / {self.method}"


def run(cfg: Config, *, teacher_dir: str | Path | None = None, name: str | None = None) -> Path:
    """Train, distil, evaluate, benchmark, export and report, skipping every stage that is already complete.

    Args:
        cfg: the config; its `run` section (`RunConfig`) lists the students and methods.
        teacher_dir: reuse this trained teacher instead of training one under `<run>/teacher`.
        name: the run folder's name under `cfg.output_dir` (default `cfg.name`, else the dataset's name).

    Returns:
        The run folder, holding `report.html`, `report.md` and `results.json`.

    Example:
        >>> run_dir = run(load_run_config("recipes/demo.yaml"))  # doctest: +SKIP
    """
    settings = check_run_config(cfg, teacher_given=teacher_dir is not None)
    if teacher_dir is not None and not (Path(teacher_dir) / "textkd_model.json").is_file():
        raise ModelLoadError(
            "not a trained textkd model (no textkd_model.json)",
            path=teacher_dir,
            hint="pass a folder written by `textkd teacher`; a hub or other transformers "
            "classifier is distilled with `textkd distill --teacher`",
        )
    splits = api.load_data(cfg.data)
    run_dir = Path(cfg.output_dir) / (name or cfg.name or splits.name)
    teacher = _teacher_dir(run_dir, teacher_dir)
    cells = [
        StudentRun(spec, method, *_student_cell(cfg, settings, spec, method, run_dir))
        for spec in settings.students
        for method in settings.methods
    ]
    save_config(cfg, run_dir / "config.yaml")
    _write_manifest(run_dir, cfg, settings, teacher, cells)
    reused = teacher.resolve() != (run_dir / "teacher").resolve()  # given now, or by an earlier invocation
    stages = _plan(cfg, settings, splits, run_dir, teacher, reused=reused, cells=cells)
    StageRunner(console).run(stages)
    paths = build_report(run_dir)
    console.print(_summary_table(_read_json(paths["results"])))
    console.print(
        f"[bold green]report:[/] {paths['html']}  (also {paths['markdown'].name}, {paths['results'].name})",
        soft_wrap=True,
    )  # one unbroken line: the path is meant to be copied
    return run_dir


_SUMMARY = {
    "model": "model",
    "accuracy %": "acc %",
    "macro-F1 %": "F1 %",
    "latency ms": "ms",
    "speed-up": "speed-up",
    "KD gain (acc / F1 pts)": "KD gain acc / F1",
}


def _summary_table(results: dict[str, Any]) -> Table:
    """The report's main columns for the terminal; drifting exports in red (the full table is in the report)."""
    table = Table(
        title=f"{results['name']}: {results['dataset']['name']} test set", box=box.SIMPLE_HEAD, pad_edge=False
    )
    keep = [COLUMNS.index(column) for column in _SUMMARY]
    for column, header in _SUMMARY.items():
        table.add_column(header, justify="left" if column == "model" else "right", no_wrap=True)
    for cells, drift in table_rows(results):
        table.add_row(*(cells[i] for i in keep), style="red" if drift else None)
    return table


def _plan(cfg, settings, splits, run_dir, teacher: Path, *, reused: bool, cells: list[StudentRun]) -> list[Stage]:
    stages = [_teacher_stage(cfg, splits, teacher, reused)]
    stages += [_distill_stage(cell, teacher, splits) for cell in cells]
    models = [("teacher", teacher)] + [(cell.name, cell.output_dir) for cell in cells]
    if settings.export:  # before bench, whose ONNX backends reuse these exports
        stages += [_export_stage(label, path, settings) for label, path in models]
    if settings.bench:
        texts = list(splits.test.texts[: settings.bench_texts])
        stages += [_bench_stage(label, path, texts, settings) for label, path in models]
    return stages


def _teacher_stage(cfg: Config, splits: DatasetSplits, teacher: Path, reused: bool) -> Stage:
    if reused:
        # A reused teacher is only evaluated, on this run's test split unless it already was.
        previous = _read_json(teacher / api.EVAL_FILE.format(split="test"))
        done = previous.get("dataset") == splits.name and previous.get("rows") == len(splits.test)
        return Stage(
            "evaluate teacher", "teacher", done, lambda: api.evaluate(teacher, splits=splits, max_len=cfg.data.max_len)
        )
    done = api.is_finished(teacher)
    if done:
        check_same_config(teacher, cfg, ("data", "teacher"))

    def train() -> None:
        api.train_teacher(cfg, teacher, resume=api.has_checkpoint(teacher), splits=splits)

    return Stage("train teacher", "teacher", done, train)


def _distill_stage(cell: StudentRun, teacher: Path, splits: DatasetSplits) -> Stage:
    done = api.is_finished(cell.output_dir)
    if done:
        check_same_config(cell.output_dir, api.method_config(cell.cfg, cell.method), ("data", "student", "distill"))

    def train() -> None:
        api.distill(
            cell.cfg,
            teacher,
            cell.output_dir.parent,
            methods=[cell.method],
            resume=api.has_checkpoint(cell.output_dir),
            splits=splits,
        )

    return Stage(f"distill {cell.name}", "distill", done, train)


def _export_stage(label: str, model_dir: Path, settings: RunConfig) -> Stage:
    out = model_dir / EXPORT_DIRNAME

    def export() -> None:
        from textkd.export.onnx import export_onnx

        try:
            export_onnx(model_dir, out, int8=settings.int8, allow_drift=settings.allow_drift)
        except TextkdError as err:
            if not (out / "export.json").is_file():
                raise
            # The parity numbers are saved: the report flags the drift in red instead of stopping the run.
            console.print(f"[bold red]export drift ({label}):[/] {err}", highlight=False)

    return Stage(f"export {label}", "export", (out / "export.json").is_file(), export)


def _bench_stage(label: str, model_dir: Path, texts: list[str], settings: RunConfig) -> Stage:
    def measure() -> None:
        from textkd.evaluation.bench import bench

        bench(
            [model_dir],
            texts=texts,
            backends=tuple(settings.bench_backends),
            threads=(1, None),
            warmup=settings.bench_warmup,
            runs=settings.bench_runs,
            throughput_texts=len(texts),
        )

    return Stage(f"bench {label}", "bench", (model_dir / "bench.json").is_file(), measure)


class StageRunner:
    """Runs the plan and shows the stage, its number, the elapsed time and an estimate of the time left.

    Training stages show their own bars (epoch, step, loss, time left of the epoch) below the stage line.
    A stage is expected to take as long as the mean of the stages of its kind already run here; while some
    kind has not run yet, the estimate is a lower bound ("> m:ss left").
    """

    def __init__(self, out: Console) -> None:
        self.console = out
        self.durations: dict[str, list[float]] = {}

    def run(self, stages: list[Stage]) -> None:
        started = time.perf_counter()
        todo = [s for s in stages if not s.done]
        if len(todo) < len(stages):
            self.console.print(f"[dim]{len(stages) - len(todo)} of {len(stages)} stages already complete: skipped[/]")
        for index, stage in enumerate(todo, 1):
            elapsed = _clock(time.perf_counter() - started)
            self.console.rule(
                f"[bold]stage {index}/{len(todo)}: {stage.name}[/] "
                f"[dim](elapsed {elapsed}{self._left(todo[index - 1 :])})[/]"
            )
            began = time.perf_counter()
            stage.action()
            self.durations.setdefault(stage.kind, []).append(time.perf_counter() - began)

    def _left(self, remaining: list[Stage]) -> str:
        means = {kind: sum(d) / len(d) for kind, d in self.durations.items()}
        known = sum(means[s.kind] for s in remaining if s.kind in means)
        if not known:
            return ""
        unknown = any(s.kind not in means for s in remaining)
        return f", {'>' if unknown else '~'} {_clock(known)} left"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def check_run_config(cfg: Config, *, teacher_given: bool = False) -> RunConfig:
    """What `run` checks before reading any data: the `run` section, then the sections it trains with (not the
    teacher's when a trained teacher is given). Returns the `run` section.

    Example:
        >>> check_run_config(load_run_config(overrides={"run.methods": "none,sof"}))
        Traceback (most recent call last):
        textkd.errors.ConfigError: unknown method 'sof' in run.methods — choose from none, hard, soft, soft+hidden
    """
    settings = run_settings(cfg)
    _check_settings(settings)
    check_config(cfg, ("data", "distill") if teacher_given else ("data", "teacher", "distill"))
    for spec in settings.students:  # each student as it will train, with its overrides (not the base section)
        check_config(_student_cell(cfg, settings, spec, settings.methods[0], Path())[0], ("student",))
    return settings


# -------------------------------------------------------------------------------------------- helpers


def _check_settings(settings: RunConfig) -> None:
    """Fail before any training on what would only fail later (a typo in a method, a backend, an override)."""
    from textkd.evaluation.bench import BACKENDS
    from textkd.models.students.registry import STUDENT_PRESETS

    if not settings.students or not settings.methods:
        raise ConfigError(
            "run.students and run.methods must not be empty",
            hint="e.g. run.students: [tinybert-4l-312, bilstm], run.methods: [none, soft]",
        )
    if len(set(settings.students)) != len(settings.students):
        raise ConfigError("run.students lists a student twice", hint="use preset@init to vary the initialisation")
    for method in settings.methods:
        if method not in api.METHODS:
            raise ConfigError(f"unknown method {method!r} in run.methods", hint=f"choose from {', '.join(api.METHODS)}")
    for backend in settings.bench_backends:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r} in run.bench_backends", hint=f"choose from {BACKENDS}")
    for key, low in (("bench_runs", 1), ("bench_texts", 1), ("bench_warmup", 0)):  # else bench fails after training
        at_least(getattr(settings, key), low, f"run.{key}", hint="or run.bench: false to skip the benchmark")
    for key in settings.student_overrides:  # a recipe may hold overrides for students a run leaves out
        if key.partition("@")[0] not in STUDENT_PRESETS:
            raise ConfigError(
                f"run.student_overrides names {key!r}, which is not a student preset",
                hint=f"use one of {', '.join(STUDENT_PRESETS)} (optionally preset@init)",
            )


def _student_cell(cfg: Config, settings: RunConfig, spec: str, method: str, run_dir: Path) -> tuple[Config, Path]:
    """The config of one student (recipe `student` section <- per-student overrides) and its folder."""
    preset, _, init = spec.partition("@")
    student = replace(cfg.student, preset=preset, train=replace(cfg.student.train))
    if init:
        student.init = init
    for key in dict.fromkeys([preset, spec]):  # the preset's overrides, then the exact spec's
        if key in settings.student_overrides:
            overrides = dotted_to_nested(dict(settings.student_overrides[key] or {}))
            student = from_dict(StudentConfig, overrides, where=f"run.student_overrides.{key}", base=student)
    grid = run_dir / ("students" if not init else f"students-{_slug(init)}")
    return replace(cfg, student=student), grid / api.student_dirname(preset, method)  # where api.distill writes it


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "init"


def _teacher_dir(run_dir: Path, teacher_dir: str | Path | None) -> Path:
    """The given teacher, else the one an earlier invocation of this run reused, else `<run>/teacher`."""
    if teacher_dir is not None:
        return Path(teacher_dir)
    previous = _read_json(run_dir / MANIFEST).get("teacher_dir", "teacher")
    return Path(previous) if Path(previous).is_absolute() else run_dir / previous


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_manifest(run_dir: Path, cfg: Config, settings: RunConfig, teacher: Path, cells: list[StudentRun]) -> None:
    """run.json: what the run holds and where, so `textkd report` can rebuild the report from files alone."""

    def rel(path: Path) -> str:
        try:
            return str(path.relative_to(run_dir))
        except ValueError:
            return str(path.resolve())

    manifest = {
        "name": run_dir.name,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "teacher_dir": rel(teacher),
        "students": [{"name": c.name, "student": c.spec, "method": c.method, "dir": rel(c.output_dir)} for c in cells],
        "run": dataclasses.asdict(settings),
        "config": to_dict(cfg),
        "machine": machine_info(),
    }
    atomic_write_json(run_dir / MANIFEST, manifest)
