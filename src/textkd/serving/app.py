"""An HTTP service around a saved model: `POST /predict`, `GET /health`, `GET /labels`, a page at `/`.

Requests that arrive within `max_wait_ms` of each other are merged into one forward pass by a
`MicroBatcher`, which runs the model on its own worker thread so the event loop never waits for it.
Every request is checked before it reaches the model: the body size (with or without Content-Length),
then the JSON shape, then the number and length of texts. Too much is answered with 413, malformed
input with 422, both as `{"error": "...", "status": ..., "detail": [...]}`; user input never causes a 500.

Example:
    >>> app = create_app("runs/banking77/students/bilstm-soft", max_texts=32)  # doctest: +SKIP
    >>> serve("runs/banking77/students/bilstm-soft", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from textkd.errors import ConfigError
from textkd.models.io import read_marker

if TYPE_CHECKING:
    from textkd.predictor import Predictor


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for, and how requests are merged into forward passes."""

    max_texts: int = 64  # texts per request
    max_chars: int = 5000  # characters per text (the model truncates to max_len tokens anyway)
    max_body_bytes: int = 2 * 2**20  # request body; room for max_texts * max_chars escaped characters
    max_batch: int = 64  # texts per merged forward pass
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < (0 if name == "max_wait_ms" else 1):
                raise ConfigError(f"{name} must be {'>= 0' if name == 'max_wait_ms' else 'positive'}, got {value}")


# ------------------------------------------------------------------------------------------ batching


@dataclass
class _Job:
    texts: list[str]
    future: concurrent.futures.Future


class MicroBatcher:
    """Merge concurrent requests into one forward pass, run on a worker thread.

    The first request of a batch waits at most `max_wait_ms` for others; a batch holds at most
    `max_batch` texts unless a single request is larger. `predict` maps N texts to an (N, C) array.

    Example:
        >>> batcher = MicroBatcher(predictor.predict_proba, max_batch=32, max_wait_ms=5)  # doctest: +SKIP
        >>> probs = await batcher.submit(["hello", "world"])  # doctest: +SKIP
    """

    def __init__(
        self, predict: Callable[[list[str]], np.ndarray], *, max_batch: int = 64, max_wait_ms: float = 5.0
    ) -> None:
        self._predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._held: _Job | None = None  # a job that did not fit the previous batch
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.forward_passes = 0
        self.texts = 0

    async def submit(self, texts: list[str]) -> np.ndarray:
        """(len(texts), C) outputs of `predict`, computed together with other pending requests."""
        self._start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put(_Job(list(texts), future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the worker after the batch in flight; later `submit` calls start a new one."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="textkd-batcher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._held or self._queue.get()
            self._held = None
            if first is None:
                return
            jobs, stop = self._gather(first)
            self._process(jobs)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """`first` plus the jobs that arrive before the deadline and fit in the batch; True when asked to stop."""
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            if size + len(job.texts) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs, False

    def _process(self, jobs: list[_Job]) -> None:
        # A client that went away cancelled its future; its texts are not computed.
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        try:
            outputs = self._predict(texts)  # (N, C)
        except Exception as err:  # a model failure is the server's: the waiting requests answer 500
            for job in jobs:
                job.future.set_exception(err)
            return
        self.forward_passes += 1
        self.texts += len(texts)
        start = 0
        for job in jobs:
            job.future.set_result(outputs[start : start + len(job.texts)])
            start += len(job.texts)


# ------------------------------------------------------------------------------------------ schemas


class PredictRequest(BaseModel):
    """The body of `POST /predict`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    texts: list[str] = Field(
        min_length=1,
        description="Texts to classify (at most max_texts, each at most max_chars characters).",
        examples=[["how do I top up my card?"]],
    )
    top_k: int = Field(
        3, ge=1, description="Labels per text, by decreasing probability (at most the number of labels)."
    )


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability (softmax of the logits).")


class Prediction(BaseModel):
    labels: list[LabelScore]


class PredictResponse(BaseModel):
    model: str
    backend: str
    latency_ms: float = Field(description="Time in the server, queueing and batching included.")
    predictions: list[Prediction] = Field(description="One per text, in request order.")


class ErrorResponse(BaseModel):
    error: str
    status: int
    detail: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """A request the service refuses: HTTP `status` and a one-line message."""

    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


def error_response(
    status: int, message: str, detail: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error: {"error": one line, "status": code, "detail": [...] when validation failed}."""
    body: dict[str, Any] = {"error": message, "status": status}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------------ the app


@dataclass
class ServiceState:
    """What the routes share: the model, its batcher and the limits."""

    predictor: Predictor
    batcher: MicroBatcher
    limits: ServeLimits
    model: str
    info: dict[str, Any]


def create_app(
    model_dir: str | Path,
    *,
    backend: str = "auto",
    max_texts: int = ServeLimits.max_texts,
    max_chars: int = ServeLimits.max_chars,
    max_body_bytes: int = ServeLimits.max_body_bytes,
    max_batch: int = ServeLimits.max_batch,
    max_wait_ms: float = ServeLimits.max_wait_ms,
    threads: int | None = None,
    trust_pickle: bool = False,
) -> FastAPI:
    """A FastAPI app serving the model in `model_dir` (loaded now: a bad folder fails here, not per request).

    Args:
        model_dir: a textkd model folder, an ONNX export folder or a hub repo id (downloaded once).
        backend: "auto", "torch" or "onnx" (see `textkd.predictor.Predictor`).
        max_texts, max_chars, max_body_bytes: request limits, answered with 413.
        max_batch, max_wait_ms: micro-batching (texts per forward pass, wait for more requests).
        threads: CPU threads of one forward pass (default: the runtime's). On a busy machine fewer
            threads than cores avoid oversubscription, which can make each pass many times slower.
        trust_pickle: allow a pickle checkpoint (.bin, .pt); loading one can run arbitrary code.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> client = TestClient(create_app("runs/bbc/teacher"))  # doctest: +SKIP
        >>> client.post("/predict", json={"texts": ["Stocks fell"], "top_k": 2}).json()  # doctest: +SKIP
    """
    from textkd.predictor import Predictor

    limits = ServeLimits(max_texts, max_chars, max_body_bytes, max_batch, max_wait_ms)
    predictor = Predictor(model_dir, backend=backend, batch_size=max_batch, trust_pickle=trust_pickle, threads=threads)
    if threads and predictor.backend.name == "torch":
        import torch

        torch.set_num_threads(threads)
    batcher = MicroBatcher(predictor.predict_proba, max_batch=max_batch, max_wait_ms=max_wait_ms)
    state = ServiceState(predictor, batcher, limits, str(model_dir), _model_info(predictor.model_dir))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(
        title="textkd",
        summary=f"Text classification with {Path(model_dir).name}",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.textkd = state
    app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.message, err.detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), headers=err.headers)  # e.g. Allow on a 405

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid request", _details(err.errors()))


class BodyLimit:
    """ASGI middleware: read the body up to `max_bytes` and answer 413 beyond, Content-Length or not."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: dict, receive: Callable, send: Callable) -> None:
        message = f"request body larger than {self.max_bytes} bytes (max_body_bytes)"
        await error_response(413, message)(scope, receive, send)


def _replay(body: bytes, receive: Callable) -> Callable:
    """An ASGI `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# ------------------------------------------------------------------------------------------ routes

router = APIRouter()
_ERRORS = {
    413: {"model": ErrorResponse, "description": "Body, texts or a text too large"},
    422: {"model": ErrorResponse, "description": "Malformed JSON, wrong types, empty texts, bad top_k"},
}
# The body is read and validated by hand (size first, then JSON), so its schema is declared here for the docs.
_BODY_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}
}


@router.post("/predict", response_model=PredictResponse, responses=_ERRORS, openapi_extra=_BODY_DOC)
async def predict(request: Request) -> JSONResponse:
    """Top-k labels with probabilities for each text; concurrent requests share forward passes."""
    state: ServiceState = request.app.state.textkd
    started = time.perf_counter()
    body = parse_request(await request.body(), state.limits, len(state.predictor.labels))
    probs = await state.batcher.submit(body.texts)  # (N, C)
    predictions = [{"labels": labels} for labels in top_k(probs, state.predictor.labels, body.top_k)]
    return JSONResponse(
        {
            "model": state.model,
            "backend": state.predictor.backend.name,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "predictions": predictions,
        }
    )


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Liveness and what is served: model, backend, label count, limits, batching counters."""
    state: ServiceState = request.app.state.textkd
    batching = {"forward_passes": state.batcher.forward_passes, "texts": state.batcher.texts}
    return {
        "status": "ok",
        "model": state.model,
        "backend": state.predictor.backend.name,
        "labels": len(state.predictor.labels),
        "info": state.info,
        "limits": asdict(state.limits),
        "batching": batching,
    }


@router.get("/labels")
async def labels(request: Request) -> dict[str, list[str]]:
    """The class names in logit order."""
    return {"labels": list(request.app.state.textkd.predictor.labels)}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


def parse_request(raw: bytes, limits: ServeLimits, num_labels: int) -> PredictRequest:
    """Validate a `/predict` body: `ApiError` 422 for malformed input, 413 for too many or too long texts.

    Example:
        >>> parse_request(b'{"texts": ["hi"], "top_k": 1}', ServeLimits(), 4).texts
        ['hi']
    """
    try:
        body = PredictRequest.model_validate_json(raw)
    except ValidationError as err:
        raise ApiError(422, _summary(err), _details(err.errors(include_url=False))) from None
    if len(body.texts) > limits.max_texts:
        raise ApiError(413, f"{len(body.texts)} texts, more than max_texts={limits.max_texts}")
    for i, text in enumerate(body.texts):
        if len(text) > limits.max_chars:
            raise ApiError(413, f"texts[{i}] has {len(text)} characters, more than max_chars={limits.max_chars}")
    if body.top_k > num_labels:
        raise ApiError(422, f"top_k must be between 1 and {num_labels} (the number of labels), got {body.top_k}")
    return body


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[list[dict[str, Any]]]:
    """For each row of (N, C) `probs`, the `k` best labels as [{"label", "score"}], best first."""
    best = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # (N, k)
    return [[{"label": labels[j], "score": float(row[j])} for j in idx] for row, idx in zip(probs, best, strict=True)]


def _summary(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid request: {where + ': ' if where else ''}{first['msg']}"


def _details(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may be huge) or non-JSON context."""
    return [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]


def _model_info(model_dir: Path) -> dict[str, Any]:
    """Facts for /health and the page: kind, preset, method, dataset (from textkd_model.json)."""
    try:
        info = read_marker(model_dir) or {}
    except (OSError, ValueError):
        return {}
    data = info.get("data") or {}
    facts = {
        "kind": info.get("kind"),
        "preset": info.get("preset"),
        "method": info.get("method"),
        "dataset": data.get("name") if isinstance(data, dict) else None,
    }
    return {k: v for k, v in facts.items() if v is not None}


def _version() -> str:
    from textkd import __version__

    return __version__


def serve(
    model_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Load the model and serve it with uvicorn until interrupted (Ctrl-C or SIGTERM).

    Args:
        options: `create_app` keyword arguments (backend, limits, trust_pickle).

    Example:
        >>> serve("runs/bbc/teacher", port=8000, max_texts=16)  # doctest: +SKIP
    """
    import uvicorn

    app = create_app(model_dir, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>textkd</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 16px system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 textarea { width: 100%; font: inherit; padding: .5rem; box-sizing: border-box; }
 .row { display: flex; gap: .75rem; align-items: center; margin: .5rem 0 1rem; }
 input[type=number] { width: 4rem; font: inherit; }
 button { font: inherit; padding: .35rem 1.2rem; }
 #results { list-style: none; padding: 0; }
 #results li { display: grid; grid-template-columns: 12rem 1fr 4.5rem; gap: .5rem; align-items: center;
               margin: .3rem 0; }
 .bar { background: #4a7bd0; height: .8rem; border-radius: 2px; }
 .score { text-align: right; font-variant-numeric: tabular-nums; }
 #error { color: #b00020; } #meta { color: #666; font-size: .85rem; }
</style></head>
<body>
<h1>textkd</h1>
<p id="meta"></p>
<form id="form">
 <textarea id="text" rows="4" placeholder="Type a text to classify" required></textarea>
 <div class="row"><label>top-k <input id="top-k" type="number" min="1" value="3"></label>
  <button id="submit" type="submit">Classify</button></div>
</form>
<p id="error" role="alert"></p>
<ol id="results"></ol>
<script>
const $ = (id) => document.getElementById(id);
fetch("health").then((r) => r.json()).then((h) => {
  $("meta").textContent = `${h.model} · ${h.backend} · ${h.labels} labels`;
  $("top-k").max = h.labels;
});
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  const body = {texts: [$("text").value], top_k: Number($("top-k").value) || 3};
  const response = await fetch("predict", {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify(body)});
  const data = await response.json();
  $("results").replaceChildren();
  if (!response.ok) { $("error").textContent = data.error; return; }
  for (const {label, score} of data.predictions[0].labels) {
    const item = document.createElement("li");
    const name = document.createElement("span"); name.className = "label"; name.textContent = label;
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = `${score * 100}%`;
    const value = document.createElement("span"); value.className = "score"; value.textContent = score.toFixed(3);
    item.append(name, bar, value);
    $("results").append(item);
  }
});
</script>
</body></html>
"""
