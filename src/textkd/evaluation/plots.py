"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Each function takes plain rows (the dicts of `results.json`) so a report can be redrawn from files alone.
Figures are `matplotlib.figure.Figure` objects, not pyplot's: no display backend is chosen and pyplot's
global state is left alone (a notebook's plots are not touched). matplotlib is imported when a figure is
drawn, not with textkd, so commands that draw nothing start faster.

Example:
    >>> png = kd_gain_bars([{"student": "bilstm", "method": "soft", "kd_gain": {"accuracy": 0.02,
    ...                      "macro_f1": 0.03}}])
    >>> png[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io
from typing import Any

_DPI = 110
_TEACHER_COLOR = "#444444"
_MARKERS = {"none": "o", "hard": "s", "soft": "^", "soft+hidden": "D"}
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def new_figure(width: float, height: float):
    """A figure with one axes, `(fig, ax)`, outside pyplot (nothing to close, no backend chosen)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def png_bytes(fig) -> bytes:
    """`fig` laid out and saved as PNG at the report's resolution."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _color(index: int) -> str:
    return _COLORS[index % len(_COLORS)]


def accuracy_vs_latency(rows: list[dict[str, Any]]) -> bytes:
    """Test accuracy against CPU latency (p50, 1 thread, batch 1; log x); marker area grows with MB.

    One colour per student, one marker shape per method; rows without a latency are left out.
    """
    from matplotlib.ticker import FuncFormatter

    fig, ax = new_figure(7, 4.5)
    students = list(dict.fromkeys(r["student"] for r in rows if r["role"] != "teacher"))
    for row in (r for r in rows if r.get("latency_p50_ms")):
        teacher = row["role"] == "teacher"
        color = _TEACHER_COLOR if teacher else _color(students.index(row["student"]))
        ax.scatter(
            row["latency_p50_ms"],
            row["accuracy"] * 100,
            s=30 + 6 * row["size_mb"],
            alpha=0.7,
            color=color,
            marker=_MARKERS.get(row.get("method"), "o"),
            edgecolors="black",
            linewidths=0.5,
        )
        ax.annotate(
            row["name"],
            (row["latency_p50_ms"], row["accuracy"] * 100),
            fontsize=8,
            xytext=(6, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    # A narrow range may hold no power of ten: label minor ticks too (only 2s and 5s over wider ranges).
    latencies = [r["latency_p50_ms"] for r in rows if r.get("latency_p50_ms")]
    narrow = bool(latencies) and max(latencies) < 4 * min(latencies)
    ax.xaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:g}" if narrow or f"{value:.0e}"[0] in "25" else "")
    )
    ax.set_xlabel("CPU latency p50, 1 thread, batch 1 (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs latency (marker size = MB)")
    ax.grid(True, which="both", alpha=0.3)
    return png_bytes(fig)


def kd_gain_bars(rows: list[dict[str, Any]]) -> bytes:
    """KD gain (method minus `none` for the same student) in accuracy and macro-F1 points, one bar pair per row."""
    gains = [r for r in rows if r.get("kd_gain")]
    fig, ax = new_figure(7, 0.6 * max(3, len(gains)) + 1)
    names = [f"{r['student']} / {r['method']}" for r in gains]
    y = range(len(gains))
    accuracy = [100 * r["kd_gain"]["accuracy"] for r in gains]
    macro_f1 = [100 * r["kd_gain"]["macro_f1"] for r in gains]
    ax.barh([i - 0.2 for i in y], accuracy, height=0.4, label="accuracy", color=_color(0))
    ax.barh([i + 0.2 for i in y], macro_f1, height=0.4, label="macro-F1", color=_color(1))
    ax.set_yticks(list(y), names)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("gain over the same student trained without KD (points)")
    ax.set_title("KD gain per student")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    return png_bytes(fig)


def learning_curves(curves: dict[str, list[list[float]]]) -> bytes:
    """Validation macro-F1 per epoch, one line per model: {name: [[epoch, macro-F1], ...]} (metrics.jsonl)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure(7, 4.5)
    for i, (name, points) in enumerate(curves.items()):
        if not points:
            continue
        epochs, scores = zip(*points, strict=True)
        color = _TEACHER_COLOR if name == "teacher" else _color(i)
        ax.plot(epochs, [100 * s for s in scores], marker="o", markersize=3, label=name, color=color)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation macro-F1 (%)")
    ax.set_title("Learning curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return png_bytes(fig)


def top_confusions_bars(confusions: list[dict[str, Any]], title: str) -> bytes:
    """The largest off-diagonal confusion-matrix cells as horizontal bars, "true -> predicted"."""
    fig, ax = new_figure(7, 0.4 * max(3, len(confusions)) + 1)
    names = [f"{c['true']} -> {c['predicted']}" for c in reversed(confusions)]
    ax.barh(names, [c["count"] for c in reversed(confusions)], color=_color(3))
    ax.set_xlabel("test examples")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    return png_bytes(fig)
