"""Load test of `textkd serve` on loopback: N requests from C concurrent clients; errors, latency, throughput.

Starts `textkd serve MODEL` as a subprocess on 127.0.0.1 (a free port), sends `--requests` POST /predict
requests of one text each from `--concurrency` concurrent clients, stops the server and records the zero-error
count, p50/p99 latency (client side, loopback), requests/s and how many forward passes the micro-batcher
needed. Texts come from the model's own test split when its dataset can be loaded, else from a built-in list.

Usage:
    python benchmarks/load_test.py runs/banking77/students/bilstm-soft --requests 2000 --concurrency 16 \
        --name serve_banking77_bilstm --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402

BUILT_IN_TEXTS = [
    "How do I top up my card with a bank transfer?",
    "The stock market fell sharply after the announcement.",
    "Set an alarm for seven tomorrow morning.",
    "What will the weather be like in Paris this weekend?",
    "Our striker scored twice in the second half.",
    "I was charged twice for the same purchase, please refund me.",
    "Play some relaxing jazz in the living room.",
    "The new album tops the charts in its first week.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="A saved textkd model folder or an ONNX export folder.")
    parser.add_argument("--requests", type=int, default=2000, help="Requests to send (default 2000).")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients (default 16).")
    parser.add_argument("--name", default="load_test", help="Results file name: <out>/<name>.json.")
    parser.add_argument("--backend", default="auto", help="auto | torch | onnx.")
    parser.add_argument("--top-k", type=int, default=3, help="Labels per text in each request.")
    parser.add_argument("--max-batch", type=int, help="Server: texts per merged forward pass.")
    parser.add_argument("--max-wait-ms", type=float, help="Server: how long a request waits for others.")
    parser.add_argument("--threads", type=int, help="Server: CPU threads per forward pass.")
    parser.add_argument("--data-dir", help="Where the model's dataset lives (default: as recorded, then built-in).")
    parser.add_argument("--out", type=Path, help="Results folder (default benchmarks/results).")
    return parser.parse_args(argv)


def model_facts(model_dir: Path) -> dict[str, Any]:
    """kind, dataset, teacher, student preset and method from the model's textkd_model.json (None when absent)."""
    marker = model_dir / "textkd_model.json"
    info = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
    data = info.get("data") or {}
    return {
        "kind": info.get("kind"),
        "dataset": data.get("name"),
        "teacher": info.get("teacher"),
        "student_preset": info.get("preset"),
        "method": info.get("method"),
        "data": data,
    }


def load_texts(facts: dict[str, Any], data_dir: str | None) -> tuple[list[str], str]:
    """The model's test texts (and where they came from), or the built-in texts when the data is not at hand."""
    if not facts["data"]:
        return BUILT_IN_TEXTS, "built-in"
    from textkd.config import DataConfig, from_dict
    from textkd.data.loading import load_splits
    from textkd.errors import TextkdError

    data = from_dict(DataConfig, facts["data"])
    if data_dir:
        data.data_dir = data_dir
    try:
        splits = load_splits(data)
    except TextkdError as err:
        print(f"using built-in texts: {err}", file=sys.stderr)
        return BUILT_IN_TEXTS, "built-in"
    return list(splits.test.texts), f"{splits.name} test split"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(model: Path, backend: str, options: dict[str, Any], timeout_s: float = 180) -> Iterator[str]:
    """`textkd serve` on 127.0.0.1 in a subprocess; yields its URL and stops it on exit."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "textkd",
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend",
        backend,
        "--log-level",
        "warning",
    ]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, process, log, timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"the server exited with code {process.returncode}:\n{log.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer within {timeout_s:.0f} s")


async def run_load(url: str, texts: list[str], requests: int, concurrency: int, top_k: int) -> dict[str, Any]:
    """Send `requests` one-text requests from `concurrency` clients sharing a connection pool."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while (i := next(counter)) < requests:
            started = time.perf_counter()
            try:
                response = await client.post("/predict", json={"texts": [texts[i % len(texts)]], "top_k": top_k})
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as err:
                errors.append(f"{type(err).__name__}: {err}")
            latencies.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for text in texts[:concurrency]:  # warm-up: connections, first forward passes
            await client.post("/predict", json={"texts": [text], "top_k": top_k})
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall_s = time.perf_counter() - started
    ms = np.asarray(latencies)
    return {
        "errors": len(errors),
        "first_errors": errors[:5],
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "requests_per_s": round(requests / wall_s, 1),
        "wall_s": round(wall_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = model_facts(args.model)
    texts, source = load_texts(facts, args.data_dir)
    options = {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "threads": args.threads}
    with running_server(args.model, args.backend, options) as url:
        before = httpx.get(f"{url}/health").json()
        figures = asyncio.run(run_load(url, texts, args.requests, args.concurrency, args.top_k))
        after = httpx.get(f"{url}/health").json()
    # Warm-up requests included: the mean batch is texts per forward pass over the whole session.
    passes = after["batching"]["forward_passes"] - before["batching"]["forward_passes"]
    served = after["batching"]["texts"] - before["batching"]["texts"]
    payload = {
        "model": str(args.model),
        "backend": after["backend"],
        "kind": facts["kind"],
        "dataset": facts["dataset"],
        "teacher": facts["teacher"],
        "student_preset": facts["student_preset"],
        "method": facts["method"],
        "texts": source,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "texts_per_request": 1,
        "top_k": args.top_k,
        **figures,
        "forward_passes": passes,
        "mean_batch": round(served / max(1, passes), 2),
        "server_limits": after["limits"],
        "server_threads": args.threads,
    }
    print(json.dumps({k: payload[k] for k in ("errors", "p50_ms", "p99_ms", "requests_per_s", "mean_batch")}))
    write_results(args.name, payload, args.out)
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
