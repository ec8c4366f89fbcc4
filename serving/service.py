"""Serve a model over HTTP: ``python -m serving.service [--model PATH] [--host H] [--port P]``

FastAPI on uvicorn (both come with Prefect):

- ``POST /predict``: images as a multipart upload (one file or several), as a
  raw image body (``Content-Type: image/png``), or as JSON pixels
  (``{"pixels": [...]}``: one image of H*W values or H x W rows, or a list of
  them; values in [0, 1], light on dark). Pictures are prepared as MNIST's
  were (``pictures.imaging``); JSON pixels go in as they are.
- ``POST /feedback``: a correction from the page (``{"image": PNG as a data
  URL or base64, "label", "model_sha256", "predicted"}``) into the inbox
  (``serving.inbox``), for intake to review.
- ``GET /health`` (200 while the process lives), ``GET /ready`` (200 only with
  a verified model loaded, else 503 and why), ``GET /metrics`` (Prometheus,
  ``serving.metrics``), ``GET /model`` (the model card, metrics and digest), and
  ``GET /``: a page to draw a digit on and correct the answer.

The model defaults to the champion (``registry/champion/model.pt``), else the
run's ``outputs/model.pt``; with neither, the service starts unready and
waits for the champion. When a promotion replaces the file, the next
request loads it; each request takes one loaded model for all its images, so
no answer mixes two models and no request waits on a half-written file
(promotion renames a whole file into place).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from mnistflow import atomic
from mnistflow.datasets import class_labels
from mnistflow.entry import run_main, setup_logging
from mnistflow.errors import MnistflowError
from mnistflow.inference import Predictor
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from lifecycle.registry_paths import RegistryPaths

from . import openapi
from .answers import answers
from .decoding import TooManyPixels, decode_within_budget
from pictures.imaging import ImageError, to_model_input
from .clients import FeedbackAccess, check_proxies, read_tokens
from .inbox import FIELDS, Inbox, Refused
from .metrics import ServiceMetrics, TimingMiddleware
from .model_file import ModelFiles, choose_model
from .window import ServedWindow

log = logging.getLogger("mnistflow")

MAX_UPLOAD_BYTES = 8 * 2**20  # a request body; a batch of 256 PNG digits is well under 1 MiB
MAX_BATCH = 1024  # images per request
class ModelHolder:
    """The model file's current contents: reloaded when the file is replaced, and
    loaded when it first appears (a service started before any champion).

    ``name`` is how answers name the file (never its absolute path); logs say the path."""

    def __init__(self, path: Path, metrics: ServiceMetrics | None = None, name: str | None = None) -> None:
        self.path, self.metrics = Path(path), metrics
        self.name = name or self.path.name
        self._lock = threading.Lock()
        self._stamp = atomic.stamp(self.path)
        self._predictor: Predictor | None = None
        if self._stamp is not None:  # a file that is there must load: a bad one is one line at start
            self._predictor = Predictor.load(self.path)
        self._announce()

    def _announce(self) -> None:
        if self.metrics is not None:
            self.metrics.serving(self._predictor and self._predictor.sha256, self.name)

    def current(self) -> Predictor | None:
        stamp = atomic.stamp(self.path)  # one stat per request: microseconds
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload()
                    self._stamp = stamp
                    self._announce()
        return self._predictor

    def _reload(self) -> None:
        first = self._predictor is None
        try:
            self._predictor = Predictor.load(self.path)
        except Exception as exc:  # noqa: BLE001  whatever the new file is, keep answering with the model we have
            reason = str(exc) if isinstance(exc, MnistflowError) else f"{self.path}: {type(exc).__name__}: {exc}"
            log.error("kept the previous model: %s", reason)
            if self.metrics is not None:
                self.metrics.reload_failures.inc()
            return
        log.info("now serving %s (sha256 %s)", self.path, self._predictor.sha256[:12])
        if self.metrics is not None and not first:
            self.metrics.reloads.inc()

    def serving(self) -> Predictor:
        """The model for a request, or a 503 saying what the service waits for."""
        predictor = self.current()
        if predictor is None:
            raise HTTPException(503, f"no model loaded yet: waiting for {self.name}")
        return predictor

    def unready(self) -> str | None:
        """Why the service cannot answer now, or None: a model is loaded and the file
        on disk is still the one loaded (its sha256 verifies)."""
        predictor = self.current()
        if predictor is None:
            return f"no model loaded yet: waiting for {self.name}"
        try:
            on_disk = atomic.sha256_of(self.path)
        except OSError:
            return f"{self.name}: gone since it was loaded"
        if on_disk != predictor.sha256:
            return f"{self.name}: sha256 {on_disk[:12]} is not the loaded model's {predictor.sha256[:12]}"
        return None


def json_body(body: bytes) -> Any:
    """The body as JSON; ValueError (its message for a 400) when it is not, however it fails."""
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(body, parse_constant=constant)
    except RecursionError:
        raise ValueError("body: JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:  # includes UnicodeDecodeError, and ints past Python's digit limit
        raise ValueError(f"body is not valid JSON ({str(exc)[:200]})") from None


def _only_numbers(pixels: Any) -> None:
    """Lists (at most three deep) of numbers: a string or a boolean is never a pixel."""
    stack = [(pixels, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list):
            if depth == 3:
                raise HTTPException(422, "pixels: nested more than 3 deep; give one image or a list of images")
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HTTPException(422, f"pixels: {json.dumps(value)[:40]} is a {type(value).__name__}, not a number; "
                                     "pixels are numbers in [0, 1]")


def pixels_from_json(payload: Any, shape: tuple[int, int]) -> np.ndarray:
    """N x H x W from ``{"pixels": ...}``, or a 422 naming what is wrong."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise HTTPException(422, 'JSON body must be an object with "pixels": one image or a list of images')
    _only_numbers(payload["pixels"])
    try:
        with np.errstate(over="ignore"):
            pixels = np.asarray(payload["pixels"], dtype=np.float64).astype(np.float32)
    except (ValueError, TypeError, OverflowError):
        raise HTTPException(422, "pixels: not a (list of) equal-length lists of numbers in [0, 1]") from None
    size, height, width = shape[0] * shape[1], *shape
    if pixels.ndim == 1 or (pixels.ndim == 2 and pixels.shape == shape):
        pixels = pixels[None]
    if pixels.ndim == 2 and pixels.shape[1] == size:
        pixels = pixels.reshape(-1, height, width)
    if pixels.ndim != 3 or pixels.shape[1:] != shape or not len(pixels):
        raise HTTPException(422, f"pixels: shape {list(np.shape(payload['pixels']))}; give {size} values (or "
                                 f"{height} rows of {width}) per image, for one image or a list of them")
    if len(pixels) > MAX_BATCH:
        raise HTTPException(413, f"pixels: {len(pixels)} images; at most {MAX_BATCH} per request")
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 1)
    if bad.any():
        image, row, col = (int(i) for i in np.argwhere(bad)[0])
        raise HTTPException(422, f"pixels: image {image}, row {row}, column {col} is {pixels[image, row, col]}; "
                                 "values must be in [0, 1] (255 -> 1.0)")
    return pixels


def prepared(images: list[tuple[str, bytes]], shape: tuple[int, int]) -> np.ndarray:
    """The pictures as model input, within the decoding budget (serving.decoding: 413 past
    its pixels, before any is decoded)."""
    try:
        return np.stack([to_model_input(grey, shape) for grey in decode_within_budget(images)])
    except TooManyPixels as exc:
        raise HTTPException(413, str(exc)) from None
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes ``limit``, declared or not."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {int(declared):,} bytes; the limit is {limit:,}")
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over the limit of {limit:,} bytes")
        body.append(chunk)
    return b"".join(body)


async def uploaded(request: Request, body: bytes) -> list[tuple[str, bytes]]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, receive=replay).form(max_files=MAX_BATCH)
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise HTTPException(422, "multipart body has no file: upload the image as a file field")
    return [(f"upload {f.filename or i}", await f.read()) for i, f in enumerate(files)]


def create_app(files: ModelFiles | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES, inbox: Inbox | None = None,
               metrics: bool = True, access: FeedbackAccess = FeedbackAccess()) -> FastAPI:
    """The service for ``files`` (a bare path: a model file and whatever lies beside it);
    corrections go to ``inbox`` (none: POST /feedback answers 404), from the clients
    ``access`` admits; ``metrics``: count and time every request for GET /metrics."""
    files = files if isinstance(files, ModelFiles) else ModelFiles.given(Path(files))
    app = FastAPI(title="mnistflow", summary="An MNIST-family classifier, served")
    page = resources.files("serving").joinpath("page.html").read_text()
    counters = ServiceMetrics({"/predict", "/feedback", "/health", "/ready", "/metrics", "/model",
                               "/monitoring/window", "/"}) \
        if metrics else None
    holder = ModelHolder(files.model, counters, files.name)
    window = ServedWindow()
    if counters is not None:
        app.add_middleware(TimingMiddleware, metrics=counters)

    @app.post("/predict", **openapi.PREDICT)
    async def predict(request: Request) -> dict[str, Any]:
        predictor = holder.serving()  # one model for the whole request
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request, max_upload_bytes)
        if kind == "application/json":
            try:
                payload = json_body(body)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            pixels = pixels_from_json(payload, predictor.input_shape)
        elif kind == "multipart/form-data":
            pixels = await run_in_threadpool(prepared, await uploaded(request, body), predictor.input_shape)
        elif kind.startswith("image/") or kind == "application/octet-stream":
            pixels = await run_in_threadpool(prepared, [("body", body)], predictor.input_shape)
        else:
            raise HTTPException(415, f"content type {kind or 'missing'}: send multipart/form-data with an image "
                                     "file, an image/* body, or application/json pixels")
        results = await run_in_threadpool(answers, predictor, pixels)
        if counters is not None:
            counters.observe_answers(results)
        window.add(predictor.sha256, pixels, results)
        return {"model": {"sha256": predictor.sha256}, "predictions": results}

    @app.post("/feedback", status_code=201, **openapi.FEEDBACK)
    async def feedback(request: Request) -> dict[str, Any]:
        if inbox is None:
            raise HTTPException(404, "this service takes no feedback (started without an inbox)")
        try:
            client = access.client(request.headers.get("authorization"), request.client and request.client.host,
                                   request.headers.get("x-forwarded-for"))
            item = await take_feedback(request, inbox, holder.current(), client)
        except Refused as refused:
            if counters is not None:
                counters.feedback_refused.labels(str(refused.status)).inc()
            raise HTTPException(refused.status, refused.reason) from None
        if counters is not None:
            counters.feedback.inc()
        return item

    @app.get("/health")
    def health() -> dict[str, Any]:
        predictor = holder.current()
        return {"status": "ok", "model": predictor and {"path": holder.name, "sha256": predictor.sha256}}

    @app.get("/ready", **openapi.READY)
    def ready() -> Any:
        from fastapi.responses import JSONResponse

        reason = holder.unready()
        if reason is not None:
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        return {"ready": True, "model": {"sha256": holder.current().sha256}}

    @app.get("/monitoring/window", **openapi.MODEL_NEEDED)
    def served_window() -> dict[str, Any]:
        """What the service answered lately (no pictures): the drift check's input (flows/monitor.py)."""
        predictor = holder.serving()
        return window.snapshot(predictor.labels)

    @app.get("/metrics", **openapi.METRICS)
    def prometheus() -> Any:
        from fastapi.responses import Response

        if counters is None:
            raise HTTPException(404, "metrics are off for this service")
        holder.current()  # a champion replaced since the last request shows in this scrape
        body, kind = counters.exposition()
        return Response(body, media_type=kind)

    @app.get("/model", **openapi.MODEL_NEEDED)
    def model() -> dict[str, Any]:
        predictor = holder.serving()
        return {"path": holder.name, "sha256": predictor.sha256, "labels": predictor.labels,
                "dataset": predictor.record.get("dataset"), "architecture": predictor.record["architecture"],
                **beside(predictor, files)}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    return app


async def take_feedback(request: Request, inbox: Inbox, predictor: Predictor | None, client: str) -> dict[str, Any]:
    """One correction from ``client``, from the body, into the inbox (``Refused`` says why not)."""
    import base64
    import binascii

    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, 'send application/json: {"image": PNG data URL or base64, "label", "model_sha256", '
                           '"predicted"}')
    try:
        body = await read_body(request, inbox.limits.item_bytes * 4 // 3 + 4096)  # base64 is 4/3 the bytes
    except HTTPException as exc:
        raise Refused(exc.status_code, exc.detail) from None
    try:
        payload = json_body(body)
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
        raise Refused(422, "image: required, the picture as a PNG data URL or base64")
    unknown = sorted(set(payload) - FIELDS)
    if unknown:
        raise Refused(422, f"{unknown[0][:40]!r}: not a field of a correction (fields: {', '.join(sorted(FIELDS))})")
    encoded = payload["image"].split(",", 1)[1] if payload["image"].startswith("data:") else payload["image"]
    try:
        picture = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(422, "image: not valid base64") from None
    labels = predictor.labels if predictor is not None else class_labels(None)
    return await run_in_threadpool(inbox.add, picture, payload.get("label"), payload.get("model_sha256"),
                                   payload.get("predicted"), labels, predictor and predictor.sha256, client)


def beside(predictor: Predictor, files: ModelFiles) -> dict[str, Any]:
    """The model's evaluation (and its metrics) and model card, when they describe *this*
    model: the evaluation names the model's sha256, and the metrics are written with it."""
    found: dict[str, Any] = {"metrics": None, "evaluation": None, "card": None}
    try:
        evaluation = json.loads(files.evaluation.read_text())
        if evaluation.get("model", {}).get("sha256") == predictor.sha256:
            found["evaluation"] = evaluation
            found["metrics"] = json.loads(files.metrics.read_text())
    except (OSError, ValueError):
        pass
    try:
        card = files.card.read_text()
        if predictor.sha256 in card:
            found["card"] = card
    except OSError:
        pass
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a model.pt (default: the champion, else outputs/model.pt)")
    parser.add_argument("--registry", type=Path, default=None,
                        help="where the champion lives (default: $MNISTFLOW_REGISTRY or registry/)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--no-metrics", action="store_true", help="no GET /metrics (and no per-request counting)")
    parser.add_argument("--no-feedback", action="store_true", help="no POST /feedback (no inbox)")
    parser.add_argument("--feedback", choices=("open", "token"), default="open",
                        help="take anonymous corrections (open), or only from clients with a token (token)")
    parser.add_argument("--feedback-tokens", type=Path, default=None,
                        help="the clients' token hashes and names, a line each (serving/clients.py)")
    parser.add_argument("--trusted-proxy", action="append", default=[],
                        help="an address or network whose X-Forwarded-For is believed (repeatable)")
    args = parser.parse_args(argv)
    setup_logging()

    def run() -> None:
        import uvicorn

        registry = RegistryPaths(roots(registry=args.registry).registry)
        files = choose_model(args.model, registry, RunPaths(DEFAULT_RUN_DIR))
        if args.model is not None and not args.model.exists():
            raise MnistflowError(f"--model: {args.model}: no such model file")
        # Loads the model: a bad file is one line. No model yet: unready, waiting for the champion.
        if args.feedback == "token" and args.feedback_tokens is None:
            raise MnistflowError("--feedback token: give the clients' tokens with --feedback-tokens FILE")
        tokens = read_tokens(args.feedback_tokens) if args.feedback_tokens else {}
        access = FeedbackAccess(args.feedback, tokens, check_proxies(args.trusted_proxy))
        app = create_app(files, inbox=None if args.no_feedback else Inbox(registry.inbox),
                         metrics=not args.no_metrics, access=access)
        if files.why:
            log.info("%s", files.why)
        log.info("serving %s on http://%s:%d/", files.model, args.host, args.port)
        from mnistflow.private_api import enabled

        from .slow_clients import HeaderDeadline

        # proxy_headers off: request.client is the socket's peer; FeedbackAccess alone believes
        # X-Forwarded-For, and only from the proxies the operator lists.
        uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log, log_level="warning",
                    http=HeaderDeadline if enabled("header-deadline") else "h11", proxy_headers=False)

    run_main(run)


if __name__ == "__main__":
    main()
