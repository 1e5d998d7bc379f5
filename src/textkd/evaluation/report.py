"""The comparison report of a run folder: `results.json`, `report.md` and a self-contained `report.html`.

Everything is read back from the files the pipeline stages leave behind, so `textkd report RUN_DIR`
rebuilds the same report at any time: each model's `textkd_model.json`, `config.yaml`, `eval_test.json`,
`metrics.jsonl` and `bench.json`, each export's `export.json`, and the run's `run.json` manifest.

Example:
    >>> paths = build_report("runs/bbc-news")  # doctest: +SKIP
    >>> paths["html"]  # doctest: +SKIP
    PosixPath('runs/bbc-news/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import yaml

from textkd.errors import TextkdError
from textkd.evaluation import plots
from textkd.evaluation.metrics import top_confusions
from textkd.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl

MANIFEST = "run.json"
RESULTS = "results.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
EVAL_TEST = "eval_test.json"
BENCH = "bench.json"
EXPORT = "export.json"
EXPORT_DIRNAME = "onnx"  # a model's ONNX export folder, as textkd.export.onnx names it
MIN_INT8_AGREEMENT = 0.99  # an int8 export that changes more argmax decisions than this is flagged
TOP_CONFUSIONS = 10


def build_report(run_dir: str | Path) -> dict[str, Path]:
    """Collect every number of a run folder and write results.json, report.md, report.html and plots/*.png.

    Returns:
        {"results": path, "markdown": path, "html": path, "plots": folder}.

    Example:
        >>> build_report("runs/bbc-news")["markdown"].read_text()[:9]  # doctest: +SKIP
        '# textkd '
    """
    run_dir = Path(run_dir)
    results = collect_results(run_dir)
    figures = draw_figures(results)
    for key, (_, png) in figures.items():
        atomic_write_bytes(run_dir / PLOTS_DIR / f"{key}.png", png)
    paths = {
        "results": run_dir / RESULTS,
        "markdown": run_dir / REPORT_MD,
        "html": run_dir / REPORT_HTML,
        "plots": run_dir / PLOTS_DIR,
    }
    atomic_write_json(paths["results"], results)
    atomic_write_text(paths["markdown"], render_markdown(results, figures))
    atomic_write_text(paths["html"], render_html(results, figures))
    return paths


# ------------------------------------------------------------------------------------------- collect


def collect_results(run_dir: str | Path) -> dict[str, Any]:
    """Every number of the report as one JSON-ready dict (fractions in [0, 1], sizes in MiB, times in ms)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TextkdError("no such run folder", path=run_dir, hint="pass the folder `textkd run` wrote")
    manifest = _read_json(run_dir / MANIFEST) or {}
    teacher_dir = _resolve(run_dir, manifest.get("teacher_dir", "teacher"))
    entries = manifest.get("students") or _scan_students(run_dir)
    if not is_evaluated(teacher_dir) and not any(is_evaluated(_resolve(run_dir, e["dir"])) for e in entries):
        raise TextkdError(
            "the run folder holds no evaluated model yet",
            path=run_dir,
            hint="run `textkd run` first (a model counts once eval_test.json exists)",
        )
    teacher = _model_row(run_dir, teacher_dir, "teacher", "teacher")
    students = [
        _model_row(run_dir, _resolve(run_dir, e["dir"]), e["name"], "student", e.get("student"), e.get("method"))
        for e in entries
    ]
    missing = [row["name"] for row in students if row.get("missing")]
    students = [row for row in students if not row.get("missing")]
    teacher = None if teacher.get("missing") else teacher
    _add_ratios(teacher, students)
    _add_kd_gain(students)
    first = _read_json(
        next(d for d in [teacher_dir] + [_resolve(run_dir, e["dir"]) for e in entries] if is_evaluated(d)) / EVAL_TEST
    )
    return {
        "name": manifest.get("name", run_dir.name),
        "dataset": {
            "name": first.get("dataset"),
            "notes": first.get("notes"),
            "partial": bool(first.get("partial_train")),
            "test_rows": first.get("rows"),
        },
        "machine": _machine(run_dir, manifest, teacher, students),
        "seed": _seed(teacher_dir, entries, run_dir),
        "epochs": {row["name"]: row["epochs"] for row in [teacher, *students] if row},
        "hyperparameters": {row["name"]: row["hyperparameters"] for row in [teacher, *students] if row},
        "run": manifest.get("run"),
        "teacher": teacher,
        "students": students,
        "missing": missing,
        "best_student": _best(students),
        "top_confusions": _confusions(run_dir, teacher, students),
    }


def model_summary(model_dir: str | Path, role: str) -> dict[str, Any]:
    """One evaluated model folder's figures as the report shows them (its row of `results.json`).

    Args:
        role: "teacher" or "student": which section of `config.yaml` holds the model's settings.
    """
    model_dir = Path(model_dir)
    marker = _read_json(model_dir / "textkd_model.json") or {}
    return _model_row(model_dir.parent, model_dir, model_dir.name, role, marker.get("preset"), marker.get("method"))


def _model_row(
    run_dir: Path, model_dir: Path, name: str, role: str, student: str | None = None, method: str | None = None
) -> dict[str, Any]:
    if not is_evaluated(model_dir):
        return {"name": name, "missing": True}
    evaluation = _read_json(model_dir / EVAL_TEST)
    marker = _read_json(model_dir / "textkd_model.json")
    curve = [
        [int(r["epoch"]), float(r["val_macro_f1"])]
        for r in read_jsonl(model_dir / "metrics.jsonl")
        if "val_macro_f1" in r
    ]
    config = _read_yaml(model_dir / "config.yaml")
    row = {
        "name": name,
        "role": role,
        "student": student,
        "preset": marker.get("preset"),
        "method": method,
        "dir": _relative(model_dir, run_dir),
        "accuracy": evaluation["accuracy"],
        "macro_f1": evaluation["macro_f1"],
        "agreement_with_teacher": 1.0 if role == "teacher" else evaluation.get("agreement_with_teacher"),
        "params": _count_params(model_dir),
        "size_mb": round(_size_mb(model_dir), 3),
        "epochs": len(curve) or None,
        "best_epoch": max(curve, key=lambda p: p[1])[0] if curve else None,
        "learning_curve": curve,
        "hyperparameters": _hyperparameters(config, role),
    }
    row.update(bench_summary(_read_json(model_dir / BENCH)))
    row["export"] = export_summary(_read_json(model_dir / EXPORT_DIRNAME / EXPORT))
    row["drift"] = bool(row["export"] and row["export"]["drift"])
    return row


def bench_summary(bench: dict[str, Any] | None) -> dict[str, Any]:
    """The speed numbers of a model's bench.json (`textkd.evaluation.bench`).

    `latency_p50_ms`: PyTorch, 1 thread, batch 1; `latency_p50_ms_by_backend`: the same for every backend;
    `throughput_per_s`: PyTorch texts/s, the best thread setting; `bench`: every measurement as written.
    """
    out: dict[str, Any] = {
        "latency_p50_ms": None,
        "latency_p50_ms_by_backend": {},
        "throughput_per_s": None,
        "bench": None,
    }
    rows = [r for r in (bench or {}).get("results", []) if isinstance(r, dict)]
    if not rows:
        return out
    for row in rows:
        if row.get("threads") == 1 and row.get("batch_size", 1) == 1 and row.get("p50_ms") is not None:
            out["latency_p50_ms_by_backend"][row["backend"]] = row["p50_ms"]
    out["latency_p50_ms"] = out["latency_p50_ms_by_backend"].get("torch")
    throughputs = [r["throughput_per_s"] for r in rows if r.get("backend") == "torch" and r.get("throughput_per_s")]
    out["throughput_per_s"] = max(throughputs) if throughputs else None
    out["bench"] = rows
    return out


def export_summary(export: dict[str, Any] | None) -> dict[str, Any] | None:
    """Parity of an ONNX export from its export.json (`textkd.export.onnx`); `drift` is true when the exporter
    says so or when the int8 model agrees with PyTorch on fewer than 99% of argmax decisions."""
    if not export:
        return None
    fp32, int8 = export.get("fp32") or {}, export.get("int8") or {}
    agreement = int8.get("argmax_agreement") if isinstance(int8, dict) else None
    drift = bool(export.get("drift")) or (agreement is not None and agreement < MIN_INT8_AGREEMENT)
    return {
        "max_abs_diff": fp32.get("max_abs_diff"),
        "int8_agreement": agreement,
        "drift": drift,
        "drift_reasons": export.get("drift_reasons") or [],
        "accuracy": export.get("accuracy"),
        "parity_rows": export.get("parity_rows"),
        "files_mb": export.get("files"),
    }


def _add_ratios(teacher: dict[str, Any] | None, students: list[dict[str, Any]]) -> None:
    """Speed-up (teacher latency / model latency, per backend) and compression (teacher / model parameters)."""
    for row in ([teacher] if teacher else []) + students:
        by_backend = teacher["latency_p50_ms_by_backend"] if teacher else {}
        row["speedup"] = _ratio(teacher and teacher["latency_p50_ms"], row["latency_p50_ms"])
        row["speedup_by_backend"] = {
            name: _ratio(by_backend.get(name), p50) for name, p50 in row["latency_p50_ms_by_backend"].items()
        }
        row["compression"] = _ratio(teacher and teacher["params"], row["params"])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def _add_kd_gain(students: list[dict[str, Any]]) -> None:
    """KD gain = a method's score minus the same student's score without KD (method `none`)."""
    baseline = {row["student"]: row for row in students if row["method"] == "none"}
    for row in students:
        base = baseline.get(row["student"])
        row["kd_gain"] = None
        if base is not None and row is not base:
            row["kd_gain"] = {k: round(row[k] - base[k], 6) for k in ("accuracy", "macro_f1")}


def _best(students: list[dict[str, Any]]) -> str | None:
    return max(students, key=lambda r: (r["macro_f1"], r["accuracy"]))["name"] if students else None


def _confusions(run_dir: Path, teacher, students) -> dict[str, Any] | None:
    """The largest confusions of the best student (of the teacher when no student is finished)."""
    row = next((r for r in students if r["name"] == _best(students)), teacher)
    if row is None:
        return None
    evaluation = _read_json(_resolve(run_dir, row["dir"]) / EVAL_TEST)
    labels = list(evaluation["per_class"])
    cells = top_confusions(evaluation["confusion_matrix"], labels, k=TOP_CONFUSIONS)
    return {"model": row["name"], "confusions": [{"true": t, "predicted": p, "count": c} for t, p, c in cells]}


def _machine(run_dir: Path, manifest: dict[str, Any], teacher, students) -> dict[str, Any]:
    for row in [teacher, *students]:
        bench = _read_json(_resolve(run_dir, row["dir"]) / BENCH) if row else None
        if bench and isinstance(bench.get("machine"), dict):
            return bench["machine"]
    return manifest.get("machine") or machine_info()


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, core count, versions and torch's intra-op thread count of this process."""
    import torch

    from textkd.evaluation.bench import machine_info as describe

    return describe(torch.get_num_threads())


def _seed(teacher_dir: Path, entries: list[dict[str, Any]], run_dir: Path) -> int | None:
    for directory in [teacher_dir] + [_resolve(run_dir, e["dir"]) for e in entries]:
        config = _read_yaml(directory / "config.yaml")
        if config:
            section = config["teacher" if directory == teacher_dir else "student"]
            return section["train"]["seed"]
    return None


def _hyperparameters(config: dict[str, Any], role: str) -> dict[str, Any]:
    if not config:
        return {}
    section = config.get(role, {})
    train = section.get("train", {})
    keep = ("epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "patience", "seed", "max_steps", "ema_decay")
    keep += ("class_weights",)
    out = {"max_len": config.get("data", {}).get("max_len"), **{k: train.get(k) for k in keep}}
    if role == "teacher":
        out.update({k: section.get(k) for k in ("backbone", "pooling", "head", "dropout")})
    else:
        out.update(
            {
                k: section.get(k)
                for k in (
                    "preset",
                    "init",
                    "num_layers",
                    "hidden_size",
                    "tokenizer",
                    "pooling",
                    "head",
                    "dropout",
                    "encoder_dropout",
                )
            }
        )  # None: the preset's
        if section.get("embedding_init", "random") != "random":
            out["embedding_init"] = section["embedding_init"]
        distill = config.get("distill", {})
        out.update({k: distill.get(k) for k in ("method", "temperature", "alpha")})
        if out["method"] in ("soft", "soft+hidden"):
            out["kd_loss"] = distill.get("kd_loss") or "kl"
            if out["kd_loss"] == "mse":
                out["temperature"] = None  # the logit MSE has none
            out["kd_schedule"] = _schedule_text(distill, out["method"])
        if out["method"] != "none":  # the transfer set beyond the labelled rows, when there is one
            out.update({k: distill.get(k) or None for k in ("augment", "unlabeled", "teachers")})
    return out


def _schedule_text(distill: dict[str, Any], method: str) -> str:
    """ "T linear 8 -> 1, alpha constant 0.7": the KD schedules a student was trained with."""
    names = {"temperature": "T", "alpha": "alpha", "hidden_weight": "hidden"}
    if method == "soft":
        names.pop("hidden_weight")
    if distill.get("kd_loss") == "mse":
        names.pop("temperature")
    parts = []
    for key, short in names.items():
        kind, start, end = distill.get(f"{key}_schedule") or "constant", distill.get(key), distill.get(f"{key}_end")
        if kind == "constant" or end is None or end == start:
            parts.append(f"{short} constant {start:g}" if start is not None else f"{short} default")
        else:
            parts.append(f"{short} {kind} {start:g} -> {end:g}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------- render


def draw_figures(results: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """{key: (title, PNG bytes)} for the plots the results allow (a plot without data is left out)."""
    rows = [r for r in [results["teacher"], *results["students"]] if r]
    figures: dict[str, tuple[str, bytes]] = {}
    if any(r["latency_p50_ms"] for r in rows):
        figures["accuracy_vs_latency"] = ("Accuracy vs CPU latency", plots.accuracy_vs_latency(rows))
    if any(r["kd_gain"] for r in results["students"]):
        figures["kd_gain"] = ("KD gain per student", plots.kd_gain_bars(results["students"]))
    curves = {r["name"]: r["learning_curve"] for r in rows if r["learning_curve"]}
    if curves:
        figures["learning_curves"] = ("Learning curves", plots.learning_curves(curves))
    confusions = results["top_confusions"]
    if confusions and confusions["confusions"]:
        title = f"Largest confusions of {confusions['model']}"
        figures["top_confusions"] = (title, plots.top_confusions_bars(confusions["confusions"], title))
    return figures


COLUMNS = [
    "model",
    "accuracy %",
    "macro-F1 %",
    "agreement %",
    "params",
    "MB",
    "latency ms",
    "int8 ms",
    "texts/s",
    "speed-up",
    "compression",
    "KD gain (acc / F1 pts)",
    "export",
]


def table_rows(results: dict[str, Any]) -> list[tuple[list[str], bool]]:
    """The comparison table as text cells, one row per model, with its drift flag."""
    out = []
    for row in [r for r in [results["teacher"], *results["students"]] if r]:
        gain = row.get("kd_gain")
        cells = [
            row["name"],
            _pct(row["accuracy"]),
            _pct(row["macro_f1"]),
            _pct(row["agreement_with_teacher"]),
            f"{row['params']:,}" if row["params"] else "-",
            f"{row['size_mb']:.1f}",
            _num(row["latency_p50_ms"], 2),
            _num(row["latency_p50_ms_by_backend"].get("onnx-int8"), 2),
            _num(row["throughput_per_s"], 0),
            _times(row.get("speedup")),
            _times(row.get("compression")),
            f"{100 * gain['accuracy']:+.2f} / {100 * gain['macro_f1']:+.2f}" if gain else "-",
            _export_cell(row["export"]),
        ]
        out.append((cells, row["drift"]))
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}x" if value >= 1 else f"{value:.2g}x"


def _export_cell(export: dict[str, Any] | None) -> str:
    if not export:
        return "-"
    parts = []
    if export["max_abs_diff"] is not None:
        parts.append(f"fp32 diff {export['max_abs_diff']:.0e}")
    if export["int8_agreement"] is not None:
        parts.append(f"int8 agree {100 * export['int8_agreement']:.1f}%")
    return ("DRIFT: " if export["drift"] else "ok: ") + ", ".join(parts)


def _facts(results: dict[str, Any]) -> list[tuple[str, str]]:
    machine = results["machine"]
    dataset = results["dataset"]
    facts = [
        (
            "dataset",
            f"{dataset['name']} ({dataset['test_rows']} test rows)"
            + (" - PARTIAL training data" if dataset["partial"] else ""),
        ),
        (
            "machine",
            f"{machine.get('platform')}; {machine.get('cpu')}; torch {machine.get('torch')}; "
            f"{machine.get('threads')} threads",
        ),
        ("seed", str(results["seed"])),
        ("epochs (run)", ", ".join(f"{k} {v}" for k, v in results["epochs"].items())),
    ]
    drifts = [
        f"{r['name']}: {'; '.join(r['export']['drift_reasons']) or 'int8 agreement below 99%'}"
        for r in [results["teacher"], *results["students"]]
        if r and r["drift"]
    ]
    if drifts:
        facts.append(("EXPORT DRIFT", " | ".join(drifts)))
    notes = dataset["notes"]
    if notes:
        facts.append(("notes", "; ".join(map(str, notes)) if isinstance(notes, list) else str(notes)))
    if results["missing"]:
        facts.append(("not finished", ", ".join(results["missing"])))
    return facts


def _hyper_lines(results: dict[str, Any]) -> list[str]:
    return [
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
        for name, params in results["hyperparameters"].items()
    ]


_LEGEND = (
    "Latency: p50 of PyTorch on the CPU, 1 thread, batch 1 (int8: the int8 ONNX export, same setting). "
    "Throughput: PyTorch texts/s, best thread setting. "
    "Speed-up and compression (parameters) are relative to the teacher. KD gain: method minus `none` for "
    "the same student. Exports marked DRIFT disagree with PyTorch beyond tolerance "
    f"(or int8 argmax agreement < {MIN_INT8_AGREEMENT:.0%})."
)


def render_markdown(results: dict[str, Any], figures: dict[str, tuple[str, bytes]]) -> str:
    """report.md: the facts, the comparison table (drifting exports in bold), hyper-parameters and plot links."""
    lines = [f"# textkd report: {results['name']}", ""]
    lines += [f"- **{key}**: {value}" for key, value in _facts(results)] + [""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for cells, drift in table_rows(results):
        cells = [f"**{c}**" if drift and i == len(cells) - 1 else c for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", _LEGEND, "", "## Hyper-parameters", ""] + [f"- {line}" for line in _hyper_lines(results)]
    confusions = results["top_confusions"]
    if confusions:
        lines += [
            "",
            f"## Largest confusions ({confusions['model']})",
            "",
            "| true | predicted | count |",
            "|---|---|---|",
        ] + [f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in confusions["confusions"]]
    lines += [""] + [f"![{title}]({PLOTS_DIR}/{key}.png)" for key, (title, _) in figures.items()]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px}
td{white-space:nowrap}
th{background:#f0f0f0}td{text-align:right}td:first-child{text-align:left}tr.teacher{background:#f7f7f7}
tr.drift td{background:#fde8e8}td.drift{color:#b00000;font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}
figure{display:inline-block;margin:1em;vertical-align:top}img{max-width:560px;border:1px solid #ddd}.legend{color:#555}
"""


def render_html(results: dict[str, Any], figures: dict[str, tuple[str, bytes]]) -> str:
    """report.html: one file with inline CSS and the plots as base64 PNG data URIs (no external resource)."""
    esc = html.escape
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _facts(results))
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = []
    for index, (cells, drift) in enumerate(table_rows(results)):
        tds = [
            f'<td class="drift">{esc(c)}</td>' if drift and i == len(cells) - 1 else f"<td>{esc(c)}</td>"
            for i, c in enumerate(cells)
        ]
        cls = "teacher" if index == 0 and results["teacher"] else ("drift" if drift else "")
        body.append(f'<tr class="{cls}">' + "".join(tds) + "</tr>")
    hyper = "".join(f"<li>{esc(line)}</li>" for line in _hyper_lines(results))
    images = "".join(
        f'<figure><img alt="{esc(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{esc(title)}</figcaption></figure>'
        for title, png in figures.values()
    )
    title = esc(f"textkd report: {results['name']}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1><dl>{facts}</dl>"
        f'<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        f'<p class="legend">{esc(_LEGEND)}</p>{_confusion_html(results)}<h2>Plots</h2>{images}'
        f"<h2>Hyper-parameters</h2><ul>{hyper}</ul></body></html>\n"
    )


def _confusion_html(results: dict[str, Any]) -> str:
    confusions = results["top_confusions"]
    if not confusions or not confusions["confusions"]:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c['true'])}</td><td>{html.escape(c['predicted'])}</td><td>{c['count']}</td></tr>"
        for c in confusions["confusions"]
    )
    return (
        f'<h2>Largest confusions ({html.escape(confusions["model"])})</h2><table id="confusions">'
        f"<thead><tr><th>true</th><th>predicted</th><th>count</th></tr></thead><tbody>{rows}</tbody></table>"
    )


# -------------------------------------------------------------------------------------------- helpers


def is_evaluated(model_dir: Path) -> bool:
    """A saved textkd model with its test figures (`textkd_model.json` and `eval_test.json`)."""
    return (model_dir / "textkd_model.json").is_file() and (model_dir / EVAL_TEST).is_file()


def _resolve(run_dir: Path, path: str) -> Path:
    """Manifest paths are relative to the run folder unless absolute (a reused teacher elsewhere)."""
    return Path(path) if Path(path).is_absolute() else run_dir / path


def _relative(path: Path, run_dir: Path) -> str:
    """A path as the manifest stores it: relative to the run folder when inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path.resolve())


def _scan_students(run_dir: Path) -> list[dict[str, Any]]:
    """Without a manifest: every saved student under students*/ (its marker gives preset and method)."""
    entries = []
    for marker in sorted(run_dir.glob("students*/*/textkd_model.json")):
        info = _read_json(marker)
        student = info.get("preset", marker.parent.name)
        entries.append(
            {
                "name": f"{student} / {info.get('method')}",
                "student": student,
                "method": info.get("method"),
                "dir": str(marker.parent.relative_to(run_dir)),
            }
        )
    return entries


def _count_params(model_dir: Path) -> int | None:
    """Parameters from the safetensors header (no weights are loaded)."""
    from safetensors import safe_open

    path = model_dir / "model.safetensors"
    if not path.is_file():
        return None
    with safe_open(path, framework="np") as handle:
        return int(sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys()))  # noqa: SIM118


def _size_mb(model_dir: Path) -> float:
    from textkd.models.io import model_size_mb

    return model_size_mb(model_dir)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
