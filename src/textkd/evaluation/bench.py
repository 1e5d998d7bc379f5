"""CPU cost of saved models: parameters, size on disk, latency and throughput per backend and thread count.

For each model and backend ("torch": PyTorch fp32, "onnx": ONNX Runtime fp32, "onnx-int8": ONNX Runtime
with int8 weights), at each thread setting (1 thread, and "all": every core the runtime uses by default):

- latency: one text per call (batch 1), `runs` calls cycling through the first `runs` texts after `warmup`
  calls; p50 and p95 in milliseconds. Only the forward pass is timed (texts are tokenised beforehand).
- throughput: texts per second at `batch_size` over `throughput_texts` texts in length-sorted batches (as
  `Predictor` forms them); the median of `REPEATS` passes.

ONNX backends use an export of each model (`textkd.export.onnx.ensure_export`: `<model_dir>/onnx`, or a
folder under `workdir`), reused while it matches the model's weights. Results are returned and written as
`bench.json` into each model folder; `render_bench` shows them as a table.

Example:
    >>> result = bench(["runs/bank/teacher", "runs/bank/students/bilstm-soft"], runs=50)  # doctest: +SKIP
    >>> result["models"][1]["speedup_vs_first"]["onnx-int8"]  # doctest: +SKIP
    41.7
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.table import Table

from textkd.config import DataConfig
from textkd.errors import ConfigError
from textkd.evaluation.card import refresh_model_card
from textkd.hub import model_folder
from textkd.models.io import require_model_dir
from textkd.utils import atomic_write_json

BACKENDS = ("torch", "onnx", "onnx-int8")
BENCH_FILE = "bench.json"
REPEATS = 3  # throughput passes; the median is reported


def bench(
    model_dirs: Sequence[str | Path],
    *,
    texts: list[str] | None = None,
    data: DataConfig | None = None,
    backends: Sequence[str] = BACKENDS,
    threads: Sequence[int | None] = (1, None),
    warmup: int = 10,
    runs: int = 100,
    batch_size: int = 64,
    throughput_texts: int = 512,
    workdir: str | Path | None = None,
    export_dirs: Sequence[str | Path | None] | None = None,
) -> dict[str, Any]:
    """Measure every model with every backend at every thread setting (see the module docstring).

    Args:
        model_dirs: saved textkd model folders, export folders (which have no "torch" backend) or hub repo ids
            (downloaded once, `textkd.hub.model_folder`); the first is the baseline of `speedup_vs_first`
            (typically the teacher).
        texts: the texts to time; default the test texts of `data`, else of the first model's dataset.
        backends: any of "torch", "onnx", "onnx-int8".
        threads: thread counts; None means all: torch's default count (the physical cores), for every backend.
        workdir: where to export models that have no export yet (default `<model_dir>/onnx`).
        export_dirs: an export folder per model (None: the default above); reused when current.

    Returns:
        {"machine": {...}, "settings": {...}, "models": [{"model", "name", "kind", "params", "size_mb",
        "export_dir", "drift", "backends": {backend: {"size_mb", "threads": {"1" | "all": {"threads",
        "p50_ms", "p95_ms", "mean_ms", "batch_size", "throughput"}}}}, "speedup_vs_first": {backend: float}}],
        "results": [...]}.
        `size_mb` is the fp32 safetensors file; a backend's `size_mb` is the file it runs.
        `speedup_vs_first` is the first model's p50 at the first thread setting with its first backend,
        divided by this model's (per backend). "results" repeats the measurements as flat rows (one per
        model, backend and thread setting: "model", "name", "backend", "threads", "batch_size" (1, of the
        latency), "p50_ms", "p95_ms", "mean_ms", "throughput_per_s", "throughput_batch_size", "size_mb",
        "params") for tables.

    Example:
        >>> out = bench(["runs/bank/teacher"], backends=["torch", "onnx"], runs=20)  # doctest: +SKIP
        >>> out["models"][0]["backends"]["onnx"]["threads"]["1"]["p50_ms"]  # doctest: +SKIP
        9.8
    """
    import torch

    if not model_dirs:
        raise ConfigError("no models to benchmark", hint="pass one or more model folders")
    model_dirs = [require_model_dir(model_folder(d)) for d in model_dirs]
    _check_choices(backends, threads, runs)
    texts = bench_texts(model_dirs[0], texts, data)
    targets = list(export_dirs) if export_dirs is not None else [None] * len(model_dirs)
    if len(targets) != len(model_dirs):
        raise ConfigError(f"{len(targets)} export folders for {len(model_dirs)} models")
    settings = {
        "backends": list(backends),
        "threads": [_thread_key(t) for t in threads],
        "warmup": warmup,
        "runs": runs,
        "batch_size": batch_size,
        "throughput_texts": throughput_texts,
        "repeats": REPEATS,
        "texts": len(texts),
        "timed": "forward pass only (texts tokenised beforehand)",
    }
    previous_threads = torch.get_num_threads()
    try:
        models = [
            _bench_model(Path(d), target, texts, backends, threads, settings, workdir)
            for d, target in zip(model_dirs, targets, strict=True)
        ]
    finally:
        torch.set_num_threads(previous_threads)
    _add_speedups(models, backends[0], _thread_key(threads[0]))
    machine = machine_info(previous_threads)
    for entry in models:
        single = {"machine": machine, "settings": settings, "models": [entry], "results": flat_rows([entry])}
        folder = Path(entry["model"])
        atomic_write_json(folder / BENCH_FILE, single)
        refresh_model_card(folder)  # a card textkd wrote shows the latency: keep it current
    return {"machine": machine, "settings": settings, "models": models, "results": flat_rows(models)}


def _check_choices(backends: Sequence[str], threads: Sequence[int | None], runs: int) -> None:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ConfigError(f"unknown backends {unknown}", hint=f"choose from {', '.join(BACKENDS)}")
    if not threads or any(t is not None and t < 1 for t in threads):
        raise ConfigError(f"bad thread counts {list(threads)}", hint="use positive integers or all")
    if runs < 1:
        raise ConfigError("runs must be at least 1")


def bench_texts(model_dir: str | Path, texts: list[str] | None = None, data: DataConfig | None = None) -> list[str]:
    """The texts to time: `texts`, else the test split of `data`, else of the dataset `model_dir` records."""
    from textkd.api import load_data
    from textkd.config import from_dict
    from textkd.models.io import read_marker

    if texts is not None:
        if not texts:
            raise ConfigError("no texts to benchmark")
        return list(texts)
    if data is None:
        marker = read_marker(model_dir) or {}
        if "data" not in marker:
            raise ConfigError(
                "the model does not record its dataset", path=model_dir, hint="pass --data NAME (or texts=...)"
            )
        data = from_dict(DataConfig, marker["data"])
    return list(load_data(data).test.texts)


def _bench_model(model_dir: Path, target, texts, backends, threads, settings, workdir) -> dict[str, Any]:
    from textkd.export.onnx import ONNX_FILE, ensure_export

    info = model_info(model_dir)
    export_dir = None
    if any(b.startswith("onnx") for b in backends):
        if target is None and workdir is not None:
            target = Path(workdir) / _export_name(model_dir)
        export_dir = ensure_export(model_dir, target, int8="onnx-int8" in backends, parity_texts=texts[:256])
        info.update(_export_facts(export_dir))
    info["export_dir"] = str(export_dir) if export_dir is not None else None
    is_export = (model_dir / ONNX_FILE).is_file()
    info["backends"] = {}
    for name in backends:
        if name == "torch" and is_export:
            info["backends"][name] = {"skipped": "an export folder has no PyTorch weights"}
            continue
        info["backends"][name] = _bench_backend(name, model_dir, export_dir, texts, threads, settings)
    return info


def model_info(model_dir: Path) -> dict[str, Any]:
    """Name, kind, parameters and fp32 weights size (MiB) of a model folder."""
    from textkd.models.io import count_parameters, load_model, model_size_mb, read_marker

    marker = read_marker(model_dir) or {}
    info = {
        "model": str(model_dir),
        "name": model_dir.name,
        "kind": marker.get("kind"),
        "preset": marker.get("preset"),
        "method": marker.get("method"),
        "params": None,
        "size_mb": None,
    }
    if (model_dir / "model.safetensors").is_file():
        model, _ = load_model(model_dir)
        info["params"] = count_parameters(model)
        info["size_mb"] = round(model_size_mb(model_dir), 4)
    return info


def _export_facts(export_dir: Path) -> dict[str, Any]:
    from textkd.export.onnx import EXPORT_FILE, _read_json

    export = _read_json(export_dir / EXPORT_FILE) or {}
    facts = {"drift": export.get("drift"), "params": export.get("params")}
    return {k: v for k, v in facts.items() if v is not None}


def _export_name(model_dir: Path) -> str:
    """A folder name per model under `workdir`: the model's name + a hash of its path (names repeat)."""
    digest = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:8]
    return f"{model_dir.name}-{digest}"


def _bench_backend(name, model_dir, export_dir, texts, threads, settings) -> dict[str, Any]:
    max_len = _max_len(model_dir)
    per_thread = {}
    backend = None
    for count in threads:
        backend = _open_backend(name, model_dir, export_dir, count or _all_threads(), backend)
        per_thread[_thread_key(count)] = {
            "threads": count or _all_threads(),
            **time_backend(backend, texts, max_len, **_timing(settings)),
        }
    return {"size_mb": _backend_size(name, backend, model_dir), "threads": per_thread}


def _timing(settings: dict[str, Any]) -> dict[str, int]:
    return {k: settings[k] for k in ("warmup", "runs", "batch_size", "throughput_texts")}


def _open_backend(name: str, model_dir: Path, export_dir: Path | None, count: int, previous=None):
    """The backend running on `count` threads (torch: the same model; ONNX Runtime: a new session)."""
    import torch

    from textkd.export.onnx import OnnxBackend
    from textkd.predictor import TorchBackend

    if name == "torch":
        torch.set_num_threads(count)
        return previous or TorchBackend(model_dir)
    return OnnxBackend(export_dir, variant="int8" if name == "onnx-int8" else "fp32", threads=count)


def _backend_size(name: str, backend, model_dir: Path) -> float:
    from textkd.models.io import model_size_mb

    path = model_dir if name == "torch" else backend.path
    return round(model_size_mb(path), 4)


def time_backend(
    backend,
    texts: list[str],
    max_len: int,
    *,
    warmup: int = 10,
    runs: int = 100,
    batch_size: int = 64,
    throughput_texts: int = 512,
) -> dict[str, float]:
    """Latency at batch 1 (p50, p95, mean in ms) and throughput (texts/s) of one backend.

    Example:
        >>> from textkd.export.onnx import OnnxBackend
        >>> time_backend(OnnxBackend("runs/bank/student/onnx"), ["hi"] * 10, 64, runs=10)  # doctest: +SKIP
        {'p50_ms': 1.1, 'p95_ms': 1.4, 'mean_ms': 1.2, 'batch_size': 64, 'throughput': 2210.0}
    """
    from textkd.export.onnx import encode_batches

    singles = [encode_batches(backend.tokenizer, [text], max_len, 1)[0] for text in _cycle(texts, runs)]
    for i in range(warmup):
        backend.logits(*singles[i % len(singles)][1:])
    times_ms = []
    for _, ids, mask in singles:
        started = time.perf_counter()
        backend.logits(ids, mask)
        times_ms.append((time.perf_counter() - started) * 1000)
    batches = encode_batches(backend.tokenizer, _cycle(texts, throughput_texts), max_len, batch_size)
    backend.logits(*batches[-1][1:])  # warm-up at a full batch shape
    passes = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _, ids, mask in batches:
            backend.logits(ids, mask)
        passes.append(time.perf_counter() - started)
    p50, p95 = np.percentile(times_ms, [50, 95])
    return {
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "mean_ms": round(float(np.mean(times_ms)), 4),
        "batch_size": batch_size,
        "throughput": round(throughput_texts / float(np.median(passes)), 2),
    }


def _cycle(texts: list[str], count: int) -> list[str]:
    """The first `count` texts, repeating the list when it is shorter."""
    return [texts[i % len(texts)] for i in range(count)]


def _max_len(model_dir: Path) -> int:
    from textkd.models.io import read_marker

    marker = read_marker(model_dir) or {}
    return (marker.get("data") or {}).get("max_len") or 128


def _thread_key(count: int | None) -> str:
    return "all" if count is None else str(count)


def _all_threads() -> int:
    """What "all" means for every backend: torch's default thread count (the physical cores)."""
    return _DEFAULT_TORCH_THREADS or os.cpu_count() or 1


def _add_speedups(models: list[dict[str, Any]], baseline_backend: str, baseline_threads: str) -> None:
    baseline = _p50(models[0], baseline_backend, baseline_threads)
    for entry in models:
        entry["speedup_vs_first"] = {}
        for name in entry["backends"]:
            p50 = _p50(entry, name, baseline_threads)
            if baseline and p50:
                entry["speedup_vs_first"][name] = round(baseline / p50, 2)


def _p50(entry: dict[str, Any], backend: str, threads: str) -> float | None:
    return ((entry["backends"].get(backend) or {}).get("threads") or {}).get(threads, {}).get("p50_ms")


def flat_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model, backend and thread setting (see `bench`'s "results")."""
    rows = []
    for entry in models:
        for backend, figures in entry["backends"].items():
            for timing in (figures.get("threads") or {}).values():
                rows.append(
                    {
                        "model": entry["model"],
                        "name": entry["name"],
                        "backend": backend,
                        "threads": timing["threads"],
                        "batch_size": 1,
                        "p50_ms": timing["p50_ms"],
                        "p95_ms": timing["p95_ms"],
                        "mean_ms": timing["mean_ms"],
                        "throughput_per_s": timing["throughput"],
                        "throughput_batch_size": timing["batch_size"],
                        "size_mb": figures["size_mb"],
                        "params": entry["params"],
                    }
                )
    return rows


def machine_info(torch_threads: int) -> dict[str, Any]:
    """Where the numbers were measured: platform, CPU model, cores, versions, torch's default threads."""
    import onnxruntime
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "threads": torch_threads,
    }


def _default_torch_threads() -> int | None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch.get_num_threads()


_DEFAULT_TORCH_THREADS = _default_torch_threads()  # read at import, before bench changes it


# --------------------------------------------------------------------------------------------- render


def render_bench(result: dict[str, Any]) -> Table:
    """A rich table of `bench` output: one row per model and backend.

    Example:
        >>> from rich.console import Console
        >>> Console().print(render_bench(result))  # doctest: +SKIP
    """
    thread_keys = result["settings"]["threads"]
    settings = result["settings"]
    table = Table(
        title=f"CPU latency at batch 1 ({settings['runs']} runs), throughput at batch "
        f"{settings['batch_size']}; t = threads",
        box=box.SIMPLE_HEAD,
    )
    for column in ("model", "backend", "params", "MB"):
        table.add_column(column, justify="left" if column in ("model", "backend") else "right", overflow="fold")
    for key in thread_keys:
        table.add_column(f"p50/p95\nms {key}t", justify="right", overflow="fold")
        table.add_column(f"texts/s\n{key}t", justify="right", overflow="fold")
    table.add_column(f"speedup\n{thread_keys[0]}t", justify="right", overflow="fold")
    for entry in result["models"]:
        for name, figures in entry["backends"].items():
            table.add_row(*_bench_row(entry, name, figures, thread_keys))
    if any(entry.get("drift") for entry in result["models"]):
        table.caption = "[red]* int8 predictions drift from PyTorch (< 99% agreement; see export.json)[/]"
    return table


def _bench_row(entry: dict[str, Any], name: str, figures: dict[str, Any], thread_keys: list[str]) -> list[str]:
    params = f"{entry['params'] / 1e6:.2f}M" if entry.get("params") else "-"
    label = f"[bold red]{name}*[/]" if entry.get("drift") and name == "onnx-int8" else name
    if "skipped" in figures:
        return [entry["name"], label, params, "-", *(["-"] * (2 * len(thread_keys))), "-"]
    cells = [entry["name"], label, params, f"{figures['size_mb']:.1f}"]
    for key in thread_keys:
        timing = figures["threads"].get(key, {})
        cells.append(f"{_ms(timing['p50_ms'])}/{_ms(timing['p95_ms'])}" if timing else "-")
        cells.append(f"{timing['throughput']:,.0f}" if timing else "-")
    speedup = entry.get("speedup_vs_first", {}).get(name)
    cells.append(f"{speedup:.1f}x" if speedup else "-")
    return cells


def _ms(value: float) -> str:
    """Three significant digits without exponents: 0.76, 9.22, 17.9, 583."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
