"""The comparison report from a synthetic run folder: numbers, drift flags, files, and rendering in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from textkd.evaluation.report import build_report, collect_results, export_summary
from textkd.utils import append_jsonl, atomic_write_json

LABELS = ["weather", "sports", "finance", "music"]


def _model(
    path: Path,
    *,
    kind: str,
    params: int,
    accuracy: float,
    macro_f1: float,
    latency: float,
    preset: str | None = None,
    method: str | None = None,
    confusion=None,
) -> Path:
    """A finished model folder as the pipeline leaves it, without training anything."""
    path.mkdir(parents=True)
    save_file({"weight": np.zeros(params, dtype=np.float32)}, str(path / "model.safetensors"))
    atomic_write_json(path / "textkd_model.json", {"kind": kind, "preset": preset, "method": method})
    section = "teacher" if kind == "teacher" else "student"
    config = {
        "data": {"max_len": 32},
        section: {"preset": preset, "train": {"epochs": 3, "lr": 1e-3, "seed": 7}},
        "distill": {"method": method, "temperature": 4.0, "alpha": 0.7},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    confusion = confusion or [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]]
    atomic_write_json(
        path / "eval_test.json",
        {
            "accuracy": accuracy,
            "macro_f1": macro_f1,
            "agreement_with_teacher": 0.9,
            "rows": 8,
            "dataset": "tiny",
            "notes": None,
            "partial_train": False,
            "confusion_matrix": confusion,
            "per_class": {name: {"f1": 1.0} for name in LABELS},
        },
    )
    for epoch in (1, 2, 3):
        append_jsonl(path / "metrics.jsonl", {"epoch": epoch, "val_macro_f1": macro_f1 * epoch / 3})
    atomic_write_json(
        path / "bench.json",
        {
            "machine": {"platform": "test-os", "cpu": "test-cpu", "torch": "x", "threads": 2},
            "results": [
                {
                    "backend": backend,
                    "threads": threads,
                    "batch_size": 1,
                    "p50_ms": latency * factor,
                    "throughput_per_s": 10.0 * threads / factor,
                }
                for backend, factor in (("torch", 1.0), ("onnx-int8", 0.5))
                for threads in (1, 2)
            ],
        },
    )
    return path


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    _model(run / "teacher", kind="teacher", params=4000, accuracy=1.0, macro_f1=1.0, latency=20.0)
    confused = [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 2], [0, 0, 0, 2]]
    for method, accuracy in (("none", 0.5), ("soft", 0.75)):
        _model(
            run / "students" / f"tiny-{method}",
            kind="student",
            params=1000,
            accuracy=accuracy,
            macro_f1=accuracy - 0.1,
            latency=2.0,
            preset="tiny",
            method=method,
            confusion=confused,
        )
    students = [
        {"name": f"tiny / {m}", "student": "tiny", "method": m, "dir": f"students/tiny-{m}"}
        for m in ("none", "soft", "hard")
    ]  # "hard" never finished
    atomic_write_json(run / "run.json", {"name": "tiny-run", "teacher_dir": "teacher", "students": students})
    for method, agreement in (("none", 1.0), ("soft", 0.95)):
        atomic_write_json(
            run / "students" / f"tiny-{method}" / "onnx" / "export.json",
            {"fp32": {"max_abs_diff": 1e-6}, "int8": {"argmax_agreement": agreement}, "drift": False},
        )
    return run


def test_results_hold_ratios_kd_gain_and_drift(run_dir):
    results = collect_results(run_dir)
    teacher, (none, soft) = results["teacher"], results["students"]
    assert results["missing"] == ["tiny / hard"]
    assert results["seed"] == 7 and results["machine"]["cpu"] == "test-cpu"
    assert teacher["params"] == 4000 and none["params"] == 1000
    assert soft["speedup"] == pytest.approx(10.0) and soft["compression"] == pytest.approx(4.0)
    assert soft["latency_p50_ms_by_backend"] == {"torch": 2.0, "onnx-int8": 1.0}
    assert soft["speedup_by_backend"]["onnx-int8"] == pytest.approx(10.0) and soft["throughput_per_s"] == 20.0
    assert none["kd_gain"] is None
    assert soft["kd_gain"] == {"accuracy": pytest.approx(0.25), "macro_f1": pytest.approx(0.25)}
    assert soft["drift"] and not none["drift"]  # int8 agreement 0.95 < 0.99
    assert results["best_student"] == "tiny / soft"
    assert results["top_confusions"]["confusions"][0] == {"true": "finance", "predicted": "music", "count": 2}
    assert soft["learning_curve"][-1] == [3, pytest.approx(0.65)]


def test_export_summary_flags_drift():
    assert export_summary({"drift": True, "int8": {"argmax_agreement": 1.0}})["drift"]
    assert export_summary({"drift": False, "int8": {"argmax_agreement": 0.98}})["drift"]
    assert not export_summary({"drift": False, "fp32": {"max_abs_diff": 0.0}})["drift"]
    assert export_summary(None) is None


def test_build_report_writes_all_files(run_dir):
    paths = build_report(run_dir)
    results = json.loads(paths["results"].read_text())
    assert [r["name"] for r in results["students"]] == ["tiny / none", "tiny / soft"]
    markdown = paths["markdown"].read_text()
    assert "| tiny / soft |" in markdown and "**DRIFT:" in markdown and "test-cpu" in markdown
    assert "EXPORT DRIFT" in markdown
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 4
    assert 'class="drift"' in page and "http://" not in page and "https://" not in page
    assert sorted(p.name for p in paths["plots"].iterdir()) == [
        "accuracy_vs_latency.png",
        "kd_gain.png",
        "learning_curves.png",
        "top_confusions.png",
    ]


def test_report_without_bench_or_manifest(run_dir):
    (run_dir / "run.json").unlink()
    for bench in run_dir.rglob("bench.json"):
        bench.unlink()
    paths = build_report(run_dir)
    results = json.loads(paths["results"].read_text())
    assert [r["name"] for r in results["students"]] == ["tiny / none", "tiny / soft"]  # found by scanning
    assert results["students"][0]["latency_p50_ms"] is None
    assert not (paths["plots"] / "accuracy_vs_latency.png").exists()


def test_report_of_empty_folder_is_a_user_error(tmp_path):
    from textkd.errors import TextkdError

    with pytest.raises(TextkdError, match="no evaluated model"):
        build_report(tmp_path)


# ------------------------------------------------------------------------------------------ Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket (websocket-client)."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=20, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))


def _open_page(profile: Path) -> tuple[subprocess.Popen, str]:
    """Start headless Chromium on a free port; return the process and its blank page's websocket URL."""
    args = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    # A session of its own so the whole process group (renderers, crashpad) can be stopped together.
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.is_file() and port_file.read_text().strip()):
        if time.monotonic() > deadline or process.poll() is not None:
            _stop(process)
            pytest.fail("Chromium did not open its DevTools port")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        pages = [t for t in json.load(response) if t["type"] == "page"]
    return process, pages[0]["webSocketDebuggerUrl"]


def _stop(process: subprocess.Popen) -> None:
    """Terminate Chromium and every helper it started (they share its process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_report_html_renders_in_chromium(run_dir, tmp_path):
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    html_path = build_report(run_dir)["html"]
    # The profile lives in pytest's tmp_path, not a TemporaryDirectory: Chromium's helper processes may still
    # write into it for a moment after the browser exits, and that must not fail the test.
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    process, url = _open_page(profile)
    try:
        page = DevTools(url)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=html_path.resolve().as_uri())
        page.wait_for("Page.loadEventFired")
        check = (
            "JSON.stringify({rows: document.querySelectorAll('#comparison tbody tr').length, "
            "drift: document.querySelectorAll('td.drift').length, "
            "images: Array.from(document.images).map(i => [i.complete, i.naturalWidth])})"
        )
        found = json.loads(page.call("Runtime.evaluate", expression=check, returnByValue=True)["result"]["value"])
        errors = [
            e
            for e in page.events
            if e.get("method") in ("Runtime.exceptionThrown", "Log.entryAdded")
            and (e["method"] == "Runtime.exceptionThrown" or e["params"]["entry"]["level"] == "error")
        ]
        errors += [
            e
            for e in page.events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
        ]
        page.ws.close()
    finally:
        _stop(process)
    assert found["rows"] == 3 and found["drift"] == 1
    assert len(found["images"]) == 4 and all(done and width > 0 for done, width in found["images"])
    assert errors == []
