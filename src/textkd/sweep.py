"""Hyper-parameter search for distillation with Optuna: T, alpha, learning rate and epochs.

Every trial distils the configured student with the given method and is scored by its best validation
macro-F1; the test split is never read during the search. Trial 0 is always the configuration as given (the
defaults or the recipe), so the best trial is at least as good as it on validation. Trials are pruned
early by Optuna's median pruner on the per-epoch validation macro-F1. All trials reuse the teacher-output
cache, so a trial costs one student training.

Outputs under the sweep folder: `trials.jsonl` (one row per finished or pruned trial), `best.yaml` (the
input config with the best settings: a recipe), `sweep.json`, `trials.png` and `report.md`. Only the best
trial's model is kept; it is evaluated on test once, after the search.

Example:
    >>> result = sweep(cfg, "runs/banking77/teacher", trials=20)  # doctest: +SKIP
    >>> result.best_params  # doctest: +SKIP
    {'temperature': 3.1, 'alpha': 0.82, 'lr': 0.00041, 'epochs': 14}
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from textkd.config import Config, check_config, save_config
from textkd.errors import ConfigError
from textkd.utils import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_text


@dataclass
class SearchSpace:
    """Ranges searched (log scale for temperature and learning rate)."""

    temperature: tuple[float, float] = (1.0, 10.0)
    alpha: tuple[float, float] = (0.1, 0.95)
    lr: tuple[float, float] = (5e-5, 2e-3)
    epochs: tuple[int, int] | None = None  # None: from half to 1.5x the configured epochs


@dataclass
class SweepResult:
    """What a search found: the best trial's settings and scores, and where everything is."""

    output_dir: Path
    best_params: dict[str, Any]
    best_value: float  # validation macro-F1 of the best trial
    default_value: float | None  # validation macro-F1 of trial 0 (the configuration as given)
    test_metrics: dict[str, Any] | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "textkd sweep needs Optuna", hint="pip install 'textkd[sweep]' (or: pip install optuna)"
        ) from None
    return optuna


def apply_params(cfg: Config, params: dict[str, Any]) -> Config:
    """`cfg` with a trial's settings: distill.temperature/alpha, student.train.lr/epochs."""
    cfg = copy.deepcopy(cfg)
    distill = replace(cfg.distill, temperature=float(params["temperature"]), alpha=float(params["alpha"]))
    train = replace(cfg.student.train, lr=float(params["lr"]), epochs=int(params["epochs"]))
    return replace(cfg, distill=distill, student=replace(cfg.student, train=train))


def sweep(
    cfg: Config,
    teacher_dir: str | Path,
    *,
    trials: int = 20,
    method: str = "soft",
    output_dir: str | Path | None = None,
    space: SearchSpace | None = None,
    seed: int = 0,
    timeout_s: float | None = None,
) -> SweepResult:
    """Search T, alpha, lr and epochs for one student and method on validation; see the module docstring."""
    optuna = _require_optuna()
    from textkd import api
    from textkd.data.loading import load_splits
    from textkd.hub import model_folder
    from textkd.models.io import load_model

    _check_request(cfg, trials, method, timeout_s)
    space = space or SearchSpace()
    epochs_range = space.epochs or _epochs_around(cfg.student.train.epochs)
    teacher_dir = model_folder(teacher_dir)
    teacher, teacher_tokenizer = load_model(teacher_dir)
    splits = api.align_labels(teacher, load_splits(cfg.data), teacher_dir)
    out = Path(output_dir) if output_dir else Path(cfg.output_dir) / (cfg.name or splits.name) / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.jsonl").unlink(missing_ok=True)
    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    given = {
        "temperature": cfg.distill.temperature,
        "alpha": cfg.distill.alpha,
        "lr": cfg.student.train.lr,
        "epochs": cfg.student.train.epochs,
    }
    study.enqueue_trial(given)  # trial 0: the configuration as given
    objective = _Objective(
        optuna, cfg, method, space, epochs_range, (teacher, teacher_tokenizer, teacher_dir), splits, out
    )
    study.optimize(objective, n_trials=trials, timeout=timeout_s, catch=())
    if not any(t.value is not None for t in study.trials):
        raise ConfigError("every trial was pruned or failed", path=out)
    best_trial = study.best_trial
    save_config(apply_params(cfg, best_trial.params), out / "best.yaml")
    test_metrics = api.evaluate(
        objective.best_dir, splits=splits, split="test", max_len=cfg.data.max_len, teacher_dir=teacher_dir
    )
    rows = [_trial_row(t) for t in study.trials]
    result = SweepResult(
        out,
        dict(best_trial.params),
        float(best_trial.value),
        study.trials[0].value,
        test_metrics,
        rows,
        time.perf_counter() - started,
    )
    summary = {
        "method": method,
        "student": cfg.student.preset,
        "trials": rows,
        "best_trial": best_trial.number,
        "best_params": best_trial.params,
        "best_val_macro_f1": best_trial.value,
        "default_params": given,
        "default_val_macro_f1": result.default_value,
        "best_model": str(objective.best_dir),
        "test": {k: test_metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
        "space": {"temperature": space.temperature, "alpha": space.alpha, "lr": space.lr, "epochs": epochs_range},
        "wall_s": result.wall_s,
    }
    _write_summary(out, summary)
    return result


def _check_request(cfg: Config, trials: int, method: str, timeout_s: float | None = None) -> None:
    check_config(cfg, ("data", "student", "distill"))
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout_s}", hint="leave it unset for no time limit")
    if method == "none":
        raise ConfigError("a sweep of T and alpha needs a KD method", hint="use soft, hard or soft+hidden")
    if cfg.distill.kd_loss == "mse":
        raise ConfigError(
            "the sweep searches the temperature, which distill.kd_loss=mse does not have",
            hint="sweep with distill.kd_loss=kl",
        )


def _epochs_around(epochs: int) -> tuple[int, int]:
    """The default epochs range: from half to 1.5x the configured epochs."""
    return max(1, epochs // 2), max(1, math.ceil(epochs * 1.5))


class _Objective:
    """One Optuna trial: suggest settings, distil on them, score on validation, keep only the best model."""

    def __init__(
        self,
        optuna,
        cfg: Config,
        method: str,
        space: SearchSpace,
        epochs_range: tuple[int, int],
        teacher: tuple[Any, Any, Path],
        splits,
        out: Path,
    ) -> None:
        self.optuna, self.cfg, self.method, self.space, self.epochs_range = optuna, cfg, method, space, epochs_range
        self.teacher, self.teacher_tokenizer, self.teacher_dir = teacher
        self.splits, self.out = splits, out
        self.best_value, self.best_dir = -math.inf, None

    def __call__(self, trial) -> float:
        params = {
            "temperature": trial.suggest_float("temperature", *self.space.temperature, log=True),
            "alpha": trial.suggest_float("alpha", *self.space.alpha),
            "lr": trial.suggest_float("lr", *self.space.lr, log=True),
            "epochs": trial.suggest_int("epochs", *self.epochs_range),
        }
        trial_dir = self.out / "trials" / f"trial-{trial.number:03d}"
        began = time.perf_counter()
        record = {"trial": trial.number, **params}
        try:
            fit = self._distill(trial, params, trial_dir)
        except self.optuna.TrialPruned:
            shutil.rmtree(trial_dir, ignore_errors=True)
            append_jsonl(
                self.out / "trials.jsonl", {**record, "state": "pruned", "wall_s": time.perf_counter() - began}
            )
            _line(record, "pruned")
            raise
        value = float(fit.best_metrics["val_macro_f1"])
        append_jsonl(
            self.out / "trials.jsonl",
            {
                **record,
                "state": "complete",
                "val_macro_f1": value,
                "val_accuracy": fit.best_metrics["val_accuracy"],
                "best_epoch": fit.best_epoch,
                "wall_s": time.perf_counter() - began,
            },
        )
        _line(record, f"val macro-F1 {value:.4f}")
        self._keep_if_best(value, trial_dir)
        return value

    def _distill(self, trial, params: dict[str, Any], trial_dir: Path):
        from textkd import api

        def report(row: dict[str, Any]) -> None:
            trial.report(row["val_macro_f1"], row["epoch"])
            if trial.should_prune():
                raise self.optuna.TrialPruned()

        return api._distill_one(
            apply_params(self.cfg, params),
            self.method,
            self.teacher,
            self.teacher_tokenizer,
            self.teacher_dir,
            self.splits,
            self.out,
            False,
            out=trial_dir,
            epoch_callback=report,
            test=False,
        )

    def _keep_if_best(self, value: float, trial_dir: Path) -> None:
        if value > self.best_value:
            if self.best_dir is not None:
                shutil.rmtree(self.best_dir, ignore_errors=True)
            self.best_value, self.best_dir = value, trial_dir
        else:
            shutil.rmtree(trial_dir, ignore_errors=True)


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    """sweep.json, trials.png (when a trial completed) and report.md."""
    atomic_write_json(out / "sweep.json", summary)
    figure = _plot(summary["trials"])
    if figure:
        atomic_write_bytes(out / "trials.png", figure)
    atomic_write_text(out / "report.md", _markdown(summary, bool(figure)))


def _line(record: dict[str, Any], outcome: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(
        f"trial {record['trial']:>3}: T={record['temperature']:.2f} "
        f"alpha={record['alpha']:.2f} lr={record['lr']:.2e} epochs={record['epochs']} "
        f"-> {outcome}"
    )


def _trial_row(trial) -> dict[str, Any]:
    return {"trial": trial.number, "state": trial.state.name.lower(), "value": trial.value, **trial.params}


def _plot(rows: list[dict[str, Any]]) -> bytes | None:
    from textkd.evaluation.plots import new_figure, png_bytes

    done = [r for r in rows if r["value"] is not None]
    if not done:
        return None
    fig, ax = new_figure(6.4, 3.6)
    ax.scatter([r["trial"] for r in done], [r["value"] for r in done], label="complete", color="tab:blue")
    pruned = [r["trial"] for r in rows if r["state"] == "pruned"]
    if pruned:
        low = min(r["value"] for r in done)
        ax.scatter(pruned, [low] * len(pruned), marker="x", color="tab:gray", label="pruned")
    best, running = -math.inf, []
    for r in rows:
        best = max(best, r["value"] if r["value"] is not None else -math.inf)
        running.append(best if best > -math.inf else None)
    ax.step([r["trial"] for r in rows], running, where="post", color="tab:orange", label="best so far")
    if rows[0]["value"] is not None:
        ax.axhline(rows[0]["value"], color="tab:green", linestyle="--", linewidth=1, label="trial 0 (as given)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation macro-F1")
    ax.legend(loc="lower right", fontsize=8)
    return png_bytes(fig)


def _markdown(summary: dict[str, Any], has_plot: bool) -> str:
    lines = [
        f"# textkd sweep: {summary['student']} / {summary['method']}",
        "",
        f"- trials: {len(summary['trials'])} ({sum(r['state'] == 'pruned' for r in summary['trials'])} pruned), "
        f"{summary['wall_s']:.0f} s",
        f"- trial 0 (as given) {summary['default_params']}: validation macro-F1 {summary['default_val_macro_f1']:.4f}",
        f"- best, trial {summary['best_trial']} {summary['best_params']}: validation macro-F1 "
        f"{summary['best_val_macro_f1']:.4f}",
        f"- best on test (evaluated once, after the search): accuracy {summary['test']['accuracy']:.4f}, "
        f"macro-F1 {summary['test']['macro_f1']:.4f}",
        "- recipe with the best settings: `best.yaml`",
        "",
    ]
    if has_plot:
        lines += ["![trials](trials.png)", ""]
    lines += ["| trial | state | T | alpha | lr | epochs | val macro-F1 |", "|---|---|---|---|---|---|---|"]
    for r in summary["trials"]:
        value = f"{r['value']:.4f}" if r["value"] is not None else "-"
        lines.append(
            f"| {r['trial']} | {r['state']} | {r['temperature']:.2f} | {r['alpha']:.2f} | {r['lr']:.2e} | "
            f"{r['epochs']} | {value} |"
        )
    return "\n".join(lines) + "\n"
