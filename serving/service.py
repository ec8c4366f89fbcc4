"""Serve a model over HTTP: ``python -m serving.service [--model PATH] [--host H] [--port P]``

FastAPI on uvicorn (both come with Prefect):

- ``POST /predict``: images as a multipart upload (one file or several), as a
  raw image body (``Content-Type: image/png``), or as JSON pixels
  (``{"pixels": [...]}``: one image of H*W values or H x W rows, or a list of
  them; values in [0, 1], light on dark). Pictures are prepared as MNIST's
  were (``serving.imaging``); JSON pixels go in as they are.
- ``GET /health``, ``GET /model`` (the model card, metrics and digest), and
  ``GET /``: a page to draw a digit on.

The model defaults to the champion (``registry/champion/model.pt``), else the
run's ``outputs/model.pt``. When a promotion replaces the file, the next
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
from mnistflow.entry import run_main, setup_logging
from mnistflow.errors import MnistflowError
from mnistflow.inference import Predictor
from mnistflow.paths import DEFAULT_RUN_DIR, RegistryPaths, RunPaths, roots

from .answers import answers
from .imaging import ImageError, decode_image, to_model_input
from .model_file import ModelFiles, choose_model

log = logging.getLogger("mnistflow")

MAX_UPLOAD_BYTES = 8 * 2**20  # a request body; a batch of 256 PNG digits is well under 1 MiB
MAX_BATCH = 1024  # images per request


class ModelHolder:
    """The model file's current contents: reloaded when the file is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = atomic.stamp(self.path)
        self._predictor = Predictor.load(self.path)  # no model at start: the service does not start

    def current(self) -> Predictor:
        stamp = atomic.stamp(self.path)  # one stat per request: microseconds
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._predictor = Predictor.load(self.path)
                        log.info("now serving %s (sha256 %s)", self.path, self._predictor.sha256[:12])
                    except MnistflowError as exc:  # keep answering with the model we have
                        log.error("kept the previous model: %s", exc)
                    self._stamp = stamp
        return self._predictor


def pixels_from_json(payload: Any, shape: tuple[int, int]) -> np.ndarray:
    """N x H x W from ``{"pixels": ...}``, or a 422 naming what is wrong."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise HTTPException(422, 'JSON body must be an object with "pixels": one image or a list of images')
    try:
        pixels = np.asarray(payload["pixels"], dtype=np.float32)
    except (ValueError, TypeError):
        raise HTTPException(422, "pixels: not a (list of) equal-length lists of numbers") from None
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
    try:
        return np.stack([to_model_input(decode_image(data, name), shape) for name, data in images])
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


def create_app(files: ModelFiles | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The service for ``files`` (a bare path: a model file and whatever lies beside it)."""
    files = files if isinstance(files, ModelFiles) else ModelFiles.given(Path(files))
    holder = ModelHolder(files.model)
    app = FastAPI(title="mnistflow", summary="An MNIST-family classifier, served")
    page = resources.files("serving").joinpath("page.html").read_text()

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        predictor = holder.current()  # one model for the whole request
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request, max_upload_bytes)
        if kind == "application/json":
            try:
                payload = json.loads(body)
            except ValueError as exc:
                raise HTTPException(400, f"body is not valid JSON ({exc})") from None
            pixels = pixels_from_json(payload, predictor.input_shape)
        elif kind == "multipart/form-data":
            pixels = await run_in_threadpool(prepared, await uploaded(request, body), predictor.input_shape)
        elif kind.startswith("image/") or kind == "application/octet-stream":
            pixels = await run_in_threadpool(prepared, [("body", body)], predictor.input_shape)
        else:
            raise HTTPException(415, f"content type {kind or 'missing'}: send multipart/form-data with an image "
                                     "file, an image/* body, or application/json pixels")
        results = await run_in_threadpool(answers, predictor, pixels)
        return {"model": {"sha256": predictor.sha256}, "predictions": results}

    @app.get("/health")
    def health() -> dict[str, Any]:
        predictor = holder.current()
        return {"status": "ok", "model": {"path": str(predictor.path), "sha256": predictor.sha256}}

    @app.get("/model")
    def model() -> dict[str, Any]:
        predictor = holder.current()
        return {"path": str(predictor.path), "sha256": predictor.sha256, "labels": predictor.labels,
                "dataset": predictor.record.get("dataset"), "architecture": predictor.record["architecture"],
                **beside(predictor, files)}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    return app


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
    args = parser.parse_args(argv)
    setup_logging()

    def run() -> None:
        import uvicorn

        files = choose_model(args.model, RegistryPaths(roots(registry=args.registry).registry),
                             RunPaths(DEFAULT_RUN_DIR))
        app = create_app(files)  # loads the model: a missing or bad file is one line
        if files.why:
            log.info("%s", files.why)
        log.info("serving %s on http://%s:%d/", files.model, args.host, args.port)
        uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log, log_level="warning")

    run_main(run)


if __name__ == "__main__":
    main()
