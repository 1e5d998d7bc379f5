"""`textkd serve`: every endpoint and limit, micro-batching, a real server process, the page in a real browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from textkd.errors import ConfigError, ModelLoadError
from textkd.models.io import save_model
from textkd.predictor import Predictor
from textkd.serving import MicroBatcher, create_app

REPO_ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"max_texts": 8, "max_chars": 200, "max_body_bytes": 4096}


@pytest.fixture(scope="module")
def model_dir(tiny_teacher, tiny_tokenizer, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("served") / "teacher"
    save_model(tiny_teacher, tiny_tokenizer, path, extra={"kind": "teacher", "data": {"name": "tiny", "max_len": 32}})
    return path


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir, max_wait_ms=0, **LIMITS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reference(model_dir) -> Predictor:
    """The same model without the server, one forward pass per call."""
    return Predictor(model_dir)


def _same_predictions(served: list[dict], expected: list[list[dict]]) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert [s["label"] for s in got["labels"]] == [s["label"] for s in want]
        np.testing.assert_allclose([s["score"] for s in got["labels"]], [s["score"] for s in want], atol=1e-5)


def test_predict_returns_top_k_per_text(client, reference, tiny_label_names):
    texts = ["the bank raised interest rates", "heavy rain is expected today", "ünïcødé ✓ 天气 \x00\x1b"]
    response = client.post("/predict", json={"texts": texts, "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["backend"] == "torch" and body["latency_ms"] >= 0
    _same_predictions(body["predictions"], reference.predict(texts, top_k=2))
    everything = client.post("/predict", json={"texts": texts[:1], "top_k": 4}).json()["predictions"][0]["labels"]
    assert sorted(s["label"] for s in everything) == sorted(tiny_label_names)
    assert sum(s["score"] for s in everything) == pytest.approx(1.0, abs=1e-5)
    default = client.post("/predict", json={"texts": [""]}).json()["predictions"][0]["labels"]
    assert len(default) == 3  # top_k defaults to 3; an empty text is still a text


def test_health_labels_docs_and_page(client, model_dir, tiny_label_names):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["labels"] == 4 and health["model"] == str(model_dir)
    assert health["info"] == {"kind": "teacher", "dataset": "tiny"}
    assert health["limits"]["max_texts"] == 8 and "forward_passes" in health["batching"]
    assert client.get("/labels").json() == {"labels": tiny_label_names}
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/labels"} <= set(schema["paths"])
    body_schema = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["texts"] and "top_k" in body_schema["properties"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and 'id="text"' in page.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Invalid JSON"),
        (b"\xff\xfe{}", "Invalid JSON"),  # not UTF-8
        (b"", "Invalid JSON"),
        (b'{"texts": ["a\\ud800"]}', "Invalid JSON"),  # a lone surrogate is not text
        (b"[" * 2000 + b"]" * 2000, "Invalid JSON"),  # nesting deeper than the parser allows
        (b'["just", "a", "list"]', "invalid request: Input should be an object"),
        (b'{"top_k": 2}', "texts: Field required"),
        (b'{"texts": "one string"}', "texts: Input should be a valid array"),
        (b'{"texts": ["ok", 3]}', "texts.1: Input should be a valid string"),
        (b'{"texts": [null]}', "texts.0: Input should be a valid string"),
        (b'{"texts": []}', "texts: List should have at least 1 item"),
        (b'{"texts": ["a"], "top_k": "2"}', "top_k: Input should be a valid integer"),
        (b'{"texts": ["a"], "top_k": true}', "top_k: Input should be a valid integer"),
        (b'{"texts": ["a"], "top_k": 1.5}', "top_k: Input should be a valid integer"),
        (b'{"texts": ["a"], "top_k": 0}', "top_k: Input should be greater than or equal to 1"),
        (b'{"texts": ["a"], "top_k": 5}', r"top_k must be between 1 and 4 \(the number of labels\), got 5"),
        (b'{"texts": ["a"], "top_k": 1' + b"0" * 400 + b"}", "top_k must be between 1 and 4"),
        (b'{"texts": ["a"], "topk": 2}', "topk: Extra inputs are not permitted"),
    ],
)
def test_malformed_requests_get_422_with_a_json_error(client, body, message):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()
    assert error["status"] == 422
    assert re.search(message, error["error"]), error["error"]


def test_limits_get_413_with_a_json_error(client):
    too_many = client.post("/predict", json={"texts": ["a"] * 9})
    assert too_many.status_code == 413 and too_many.json()["error"] == "9 texts, more than max_texts=8"
    too_long = client.post("/predict", json={"texts": ["ok", "x" * 201]})
    assert too_long.status_code == 413
    assert too_long.json()["error"] == "texts[1] has 201 characters, more than max_chars=200"
    at_the_limits = client.post("/predict", json={"texts": ["x" * 200] * 8})
    assert at_the_limits.status_code == 200
    huge = client.post("/predict", content=b"x" * 4097)
    assert huge.status_code == 413
    assert huge.json() == {"error": "request body larger than 4096 bytes (max_body_bytes)", "status": 413}
    chunks = client.post("/predict", content=(b"x" * 1000 for _ in range(5)))  # no Content-Length
    assert "content-length" not in chunks.request.headers and chunks.status_code == 413


def test_other_routes_and_methods_answer_json(client):
    wrong_method = client.get("/predict")
    assert wrong_method.json() == {"error": "Method Not Allowed", "status": 405}
    assert wrong_method.headers["allow"] == "POST"
    assert client.get("/nothing-here").json() == {"error": "Not Found", "status": 404}


def test_limits_must_be_positive(model_dir):
    with pytest.raises(ConfigError, match="max_texts must be positive, got 0"):
        create_app(model_dir, max_texts=0)
    with pytest.raises(ConfigError, match="max_wait_ms must be >= 0"):
        create_app(model_dir, max_wait_ms=-1)


def test_pickle_checkpoint_refused_unless_trusted(tiny_teacher, model_dir, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_dir / name, pickled / name)
    torch.save(tiny_teacher.state_dict(), pickled / "model.pt")
    with pytest.raises(ModelLoadError, match=r"only a pickle checkpoint \(model.pt\).*can run arbitrary code"):
        create_app(pickled)
    with TestClient(create_app(pickled, trust_pickle=True)) as trusting:
        assert trusting.post("/predict", json={"texts": ["rain"]}).status_code == 200


def test_onnx_backend_serves_the_same_predictions(model_dir, reference, tmp_path):
    pytest.importorskip("onnxruntime")
    export = pytest.importorskip("textkd.export.onnx")
    export.export_onnx(model_dir, tmp_path / "onnx")
    texts = ["the orchestra performed this week", "investors sold their bonds"]
    with TestClient(create_app(tmp_path / "onnx", threads=1, max_wait_ms=0)) as onnx_client:
        assert onnx_client.get("/health").json()["backend"] == "onnx"
        _same_predictions(
            onnx_client.post("/predict", json={"texts": texts, "top_k": 4}).json()["predictions"],
            reference.predict(texts, top_k=4),
        )


def test_concurrent_requests_share_forward_passes_and_get_their_own_results(model_dir, reference):
    app = create_app(model_dir, max_wait_ms=200, max_batch=64)
    requests = [
        ([f"the team scored {'a late goal ' * i}today", "the price of oil jumped"][: 1 + i % 2], 1 + i % 4)
        for i in range(16)
    ]
    start = threading.Barrier(len(requests))

    def send(client: TestClient, texts: list[str], k: int) -> dict:
        start.wait()
        return client.post("/predict", json={"texts": texts, "top_k": k}).json()

    with TestClient(app) as client, ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda r: send(client, *r), requests))
        passes = client.get("/health").json()["batching"]["forward_passes"]
    for (texts, k), answer in zip(requests, answers, strict=True):
        _same_predictions(answer["predictions"], reference.predict(texts, top_k=k))
    assert passes < len(requests)  # requests were merged


def test_micro_batcher_caps_batches_and_routes_outputs():
    sizes: list[int] = []

    def predict(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        return np.array([[float(t)] for t in texts])  # (N, 1): each row echoes its text

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(predict, max_batch=5, max_wait_ms=50)
        jobs = [[str(10 * i + j) for j in range(1 + i % 3)] for i in range(12)]
        outputs = await asyncio.gather(*(batcher.submit(job) for job in jobs))
        batcher.close()
        return [(job, out) for job, out in zip(jobs, outputs, strict=True)]

    for job, out in asyncio.run(main()):
        assert out[:, 0].tolist() == [float(t) for t in job]
    assert max(sizes) <= 5 and sum(sizes) == sum(1 + i % 3 for i in range(12)) and len(sizes) < 12


def test_a_failing_model_answers_500_without_killing_the_batcher(model_dir):
    app = create_app(model_dir, max_wait_ms=0)
    batcher = app.state.textkd.batcher
    working = batcher._predict
    calls = []

    def flaky(texts):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return working(texts)

    batcher._predict = flaky
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/predict", json={"texts": ["a"]}).status_code == 500
        assert client.post("/predict", json={"texts": ["a"]}).status_code == 200


# ------------------------------------------------------------------------------------ real processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 180.0) -> None:
    # A new process imports torch and transformers first: on a 2-core machine busy with training, over 60 s.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url} in {timeout} s")


@pytest.mark.slow
def test_real_server_process_answers_http_and_stops(model_dir, reference):
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "textkd",
        "serve",
        str(model_dir),
        "--port",
        str(port),
        "--max-texts",
        "4",
        "--max-body-bytes",
        "2048",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        with httpx.Client(base_url=url, timeout=10) as http:
            answer = http.post("/predict", json={"texts": ["shares of the company rose"], "top_k": 2})
            assert answer.status_code == 200
            _same_predictions(answer.json()["predictions"], reference.predict(["shares of the company rose"], 2))
            assert http.get("/labels").json()["labels"] == reference.labels
            assert http.post("/predict", json={"texts": ["a"] * 5}).status_code == 413
            streamed = http.post("/predict", content=(b"x" * 512 for _ in range(8)))  # chunked, no Content-Length
            assert streamed.status_code == 413 and streamed.json()["status"] == 413
            assert http.post("/predict", content=b"\xc3\x28").status_code == 422
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode in (0, -signal.SIGTERM), output


def test_serve_cli_refuses_a_missing_model(tmp_path):
    from typer.testing import CliRunner

    from textkd.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such model directory" in result.output


CHROMIUM = next(
    (
        p
        for p in (
            os.environ.get("CHROMIUM"),
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            shutil.which("chromium"),
        )
        if p and Path(p).is_file()
    ),
    None,
)
CHROMEDRIVER = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver",) if Path(p).is_file()), None)


@pytest.fixture
def live_url(model_dir):
    """The app served by uvicorn on a thread (a real socket, without a second process)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(model_dir), host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    _wait_ready(url, timeout=30)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="needs chromium and chromedriver")
def test_page_in_headless_chromium_shows_the_top_k(live_url, reference):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(live_url)
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: "4 labels" in d.find_element(By.ID, "meta").text)
        driver.find_element(By.ID, "text").send_keys("the concert tickets sold out")
        top_k = driver.find_element(By.ID, "top-k")
        top_k.clear()
        top_k.send_keys("2")
        driver.find_element(By.ID, "submit").click()
        rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
        shown = [
            (row.find_element(By.CLASS_NAME, "label").text, row.find_element(By.CLASS_NAME, "score").text)
            for row in rows
        ]
    finally:
        driver.quit()
    expected = reference.predict(["the concert tickets sold out"], top_k=2)[0]
    assert shown == [(s["label"], f"{s['score']:.3f}") for s in expected]


def test_predict_and_evaluate_commands_take_trust_pickle(tiny_teacher, model_dir, tmp_path):
    from typer.testing import CliRunner

    from textkd.cli import app

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_dir / name, pickled / name)
    torch.save(tiny_teacher.state_dict(), pickled / "model.pt")
    refused = CliRunner().invoke(app, ["predict", str(pickled), "rain today"])
    assert refused.exit_code == 2 and "arbitrary code" in refused.output
    trusted = CliRunner().invoke(app, ["predict", str(pickled), "rain today", "--json", "--trust-pickle"])
    assert trusted.exit_code == 0, trusted.output
    refused = CliRunner().invoke(app, ["evaluate", str(pickled), "--data", "bbc-news"])
    assert refused.exit_code == 2 and "arbitrary code" in refused.output
