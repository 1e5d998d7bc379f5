"""Rich progress bars for training: epoch, step, loss, validation metrics and time left."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """A context manager showing one bar per epoch; does nothing when disabled."""

    def __init__(self, *, enabled: bool, total_epochs: int, console: Console | None = None) -> None:
        self.enabled = enabled
        self.total_epochs = total_epochs
        self._progress: Progress | None = None
        self._task = None
        self.console = console or Console(stderr=True)

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("train", total=steps, epoch=epoch, epochs=self.total_epochs, loss="-")

    def update_step(self, step: int, loss: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=step, loss=f"{loss:.4f}")

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self._progress is None:
            return
        line = f"epoch {row['epoch']}: train loss {row.get('train_loss', float('nan')):.4f}"
        if "val_macro_f1" in row:  # a refit trains without validation
            mark = " *" if row.get("best") else ""
            line += f"  val acc {row['val_accuracy']:.4f}  val macro-F1 {row['val_macro_f1']:.4f}{mark}"
        self._progress.console.print(line)


@contextmanager
def rows_progress(description: str, total: int, *, enabled: bool = True):
    """A bar over `total` rows; yields `advance(n)`. Does nothing when disabled.

    Example:
        >>> with rows_progress("labelling", 10, enabled=False) as advance:
        ...     advance(10)
    """
    if not enabled:
        yield lambda n: None
        return
    with Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.update(task, advance=n)
