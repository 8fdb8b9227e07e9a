"""The HTTP API: Hugging Face text-embeddings-inference's `POST /predict`, so a TEI client works unchanged, plus
`POST /classify` (the labels over their tuned thresholds), `/health`, `/info`, `/metrics` and a page at `/`.

FastAPI on uvicorn; requests that arrive together are scored as one batch (batcher.py). The server keeps no state
between requests, so replicas scale behind any load balancer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..ensemble import logit
from .batcher import Batcher

log = logging.getLogger("emotion_classifier.serve")
ROUTES = ("/", "/predict", "/classify", "/health", "/info", "/metrics")


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32  # texts scored together (dynamic batching)
    # how long the first request of a batch waits for others; 0: a batch takes what queued while the previous one
    # was scored, never idling (measured: a 5 ms wait halved one client's throughput and gained nothing at 32)
    max_wait_ms: float = 0.0
    max_client_batch_size: int = 64  # texts in one request
    max_body_bytes: int = 1_000_000


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str = "Validation"):
        super().__init__(message)
        self.status, self.error_type = status, error_type


def parse_request(body: Any, limits: Limits) -> tuple[list[str], bool, dict]:
    """(texts, whether one text was sent alone, the options) of a /predict or /classify body, or an ApiError."""
    if not isinstance(body, dict) or "inputs" not in body:
        raise ApiError(422, 'expected a JSON object with "inputs": a string or a list of strings')
    inputs = body["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else inputs
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ApiError(422, '"inputs" must be a string or a list of strings')
    if not texts:
        raise ApiError(422, '"inputs" is an empty list; send at least one text', "Empty")
    if len(texts) > limits.max_client_batch_size:
        raise ApiError(413, f"{len(texts)} texts in one request; at most {limits.max_client_batch_size} "
                            "(GET /info: max_client_batch_size)")
    blank = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if blank is not None:
        raise ApiError(422, f"inputs[{blank}] is blank; every text needs a word", "Empty")
    options = {k: body.get(k, default) for k, default in (("raw_scores", False), ("truncate", None),
                                                           ("all_scores", False))}
    for key, value in options.items():
        if value is not None and not isinstance(value, bool):
            raise ApiError(422, f'"{key}" is {json.dumps(value)}; expected true or false')
    return texts, single, options


def metrics_registry():
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return registry, {
        "requests": Counter("emotion_requests", "HTTP requests by route and status", ["route", "status"],
                            registry=registry),
        "errors": Counter("emotion_errors", "Error responses by error_type", ["error_type"], registry=registry),
        "batch": Histogram("emotion_batch_size", "Texts per scored batch", registry=registry,
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)),
        "latency": Histogram("emotion_request_seconds", "Request latency by route", ["route"], registry=registry,
                             buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)),
    }


class RequestMetrics:
    """Counts every request by route and status and times it (plain ASGI: no per-request task or copy)."""

    def __init__(self, app, metrics: dict):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics["requests"].labels(route, str(status[0])).inc()
            self.metrics["latency"].labels(route).observe(time.perf_counter() - start)


def create_app(load: Callable[[], Any], limits: Limits = Limits(), on_load_error: Callable[[Exception], None]
               = lambda e: log.error("error: %s", e), describe: Callable[[Any], dict] = lambda clf: {}) -> FastAPI:
    """The API around the EmotionClassifier that `load()` returns (loaded in a thread after start: /health says
    503 until it is ready; a failure goes to `on_load_error`). `describe(clf)` adds to /info."""
    registry, metrics = metrics_registry()
    state: dict[str, Any] = {"clf": None, "batcher": None}

    async def start():
        try:
            clf = await asyncio.to_thread(load)
        except Exception as e:  # noqa: BLE001 - the command reports it and stops the server
            on_load_error(e)
            return
        batcher = Batcher(clf.predict_proba, limits.max_batch_size, limits.max_wait_ms,
                          on_batch=metrics["batch"].observe)
        state.update(clf=clf, batcher=batcher, extra=describe(clf))
        state["scoring"] = asyncio.create_task(batcher.run())
        log.info("ready: %d labels, %s", len(clf.labels), clf.describe())

    @asynccontextmanager
    async def lifespan(app):
        loading = asyncio.create_task(start())
        yield  # uvicorn lets requests in flight finish (SIGTERM) before this returns
        for task in (loading, state.get("scoring")):
            if task is not None:
                task.cancel()

    app = FastAPI(title="emotion-classifier", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestMetrics, metrics=metrics)

    def error(status: int, message: str, error_type: str) -> JSONResponse:
        metrics["errors"].labels(error_type).inc()
        # one line per error; 503 while loading is the readiness probe's expected answer, not worth a warning
        log.log(logging.DEBUG if status == 503 else logging.WARNING, "%d %s: %s", status, error_type, message)
        return JSONResponse({"error": message, "error_type": error_type}, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return error(e.status, str(e), e.error_type)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        return error(e.status_code, str(e.detail), "NotFound" if e.status_code == 404 else "Validation")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception):  # never a traceback to a client
        return error(500, f"internal error ({type(e).__name__}: {e})", "Backend")

    def ready():
        if state["clf"] is None:
            raise ApiError(503, "the model is still loading; retry in a moment", "Unhealthy")
        return state["clf"]

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise ApiError(413, f"the body is {declared} bytes; at most {limits.max_body_bytes}")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limits.max_body_bytes:
                    raise ApiError(413, f"the body is over {limits.max_body_bytes} bytes")
        except ClientDisconnect:  # gone before its body arrived: one line, nobody to answer
            raise ApiError(499, "the client closed the connection before its request was read",
                           "ClientClosed") from None
        try:
            return json.loads(body)
        except ValueError as e:
            raise ApiError(422, f"the body is not valid JSON ({e})") from None

    async def scored(request: Request):
        clf = ready()
        texts, single, options = parse_request(await read_json(request), limits)
        if options["truncate"] is False:  # TEI's rule when a client asks not to truncate
            longest = max(len(ids) for ids in clf.tokenizer(texts, truncation=False)["input_ids"])
            if longest > clf.max_length:
                raise ApiError(413, f"an input has {longest} tokens; this model reads at most {clf.max_length}: "
                                    "send \"truncate\": true or a shorter text")
        try:
            probs = await state["batcher"].submit(texts)
        except Exception as e:  # a scoring failure: one line and a 500, not a traceback
            raise ApiError(500, f"scoring failed ({type(e).__name__}: {e})", "Backend") from None
        return clf, probs, single, options

    @app.post("/predict")
    async def predict(request: Request):
        clf, probs, single, options = await scored(request)
        values = logit(probs) if options["raw_scores"] else probs
        out = [[{"score": float(row[i]), "label": clf.labels[i]} for i in np.argsort(-row, kind="stable")]
               for row in values]
        return JSONResponse(out[0] if single else out)

    @app.post("/classify")
    async def classify(request: Request):
        clf, probs, single, options = await scored(request)
        out = []
        for row in probs:
            order = np.argsort(-row, kind="stable")
            rec = {"labels": [{"label": clf.labels[i], "score": float(row[i])} for i in order
                              if row[i] >= clf.thresholds[i]]}
            if options["all_scores"]:
                rec["scores"] = [{"label": clf.labels[i], "score": float(row[i]),
                                  "threshold": float(clf.thresholds[i])} for i in order]
            out.append(rec)
        return JSONResponse(out[0] if single else out)

    @app.get("/health")
    async def health():
        ready()
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        from .. import __version__

        clf = ready()
        labels = clf.labels
        return {"model_type": {"classifier": {"id2label": dict(enumerate(labels)),
                                              "label2id": {n: i for i, n in enumerate(labels)}}},
                "labels": labels, "max_input_length": clf.max_length, **asdict(limits),
                "backend": clf.backend, "quantized": clf.quantized, "version": __version__,
                "thresholds": dict(zip(labels, map(float, clf.thresholds))), **state["extra"]}

    @app.get("/metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    @app.get("/favicon.ico")
    async def favicon():  # browsers ask for one: no icon, and no 404 in the log
        return Response(status_code=204)

    return app
