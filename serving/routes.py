"""The service's routes, on one APIRouter. What a route needs comes as a FastAPI
dependency from the app's state (``Service``): the model holder, the answers'
window, the inbox, who may send corrections, and the metrics (NoMetrics when
off). Pictures are read as raw bytes, so that the byte and pixel budgets come
before any parsing; the JSON bodies' schemas are pydantic models (serving.openapi).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mnistflow.datasets import class_labels
from mnistflow.inference import Predictor

from . import openapi
from .answers import answers
from .bodies import correction_from_json, json_body, pixels_from_json, prepared, read_body, uploaded
from .clients import FeedbackAccess
from .inbox import Inbox, Refused
from .metrics import NoMetrics, ServiceMetrics
from .model_file import ModelFiles
from .model_holder import ModelHolder
from .shadow import Shadow
from .window import ServedWindow

router = APIRouter()
# Every answer names the model that gave it: a swap mid-traffic shows, request by request.
MODEL_HEADER = "X-Model-SHA256"


@dataclass
class Service:
    """What one app serves: set on ``app.state.service`` by ``serving.service.create_app``."""

    files: ModelFiles
    holder: ModelHolder
    window: ServedWindow
    metrics: ServiceMetrics | NoMetrics
    inbox: Inbox | None
    access: FeedbackAccess
    max_upload_bytes: int
    page: str
    model_name: str = "mnistflow"  # the model's name on the Open Inference Protocol's routes
    shadow: Shadow | None = None  # a challenger answering beside the champion (serving.shadow)


def service(request: Request) -> Service:
    return request.app.state.service


@router.post("/predict", **openapi.PREDICT)
async def predict(request: Request, response: Response, served: Service = Depends(service)) -> dict[str, Any]:
    predictor = served.holder.serving()  # one model for the whole request
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, served.max_upload_bytes)
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
    answered(served, predictor, pixels, results)
    response.headers[MODEL_HEADER] = predictor.sha256
    return {"model": {"sha256": predictor.sha256}, "predictions": results}


def answered(served: Service, predictor: Predictor, pixels: Any, results: list[dict[str, Any]]) -> None:
    """What every route that answers does after: count, keep in the drift window, hand to the shadow."""
    served.metrics.observe_answers(results)
    served.window.add(predictor.sha256, pixels, results)
    if served.shadow is not None:
        served.shadow.offer(predictor, pixels, results)


@router.post("/feedback", status_code=201, **openapi.FEEDBACK)
async def feedback(request: Request, served: Service = Depends(service)) -> dict[str, Any]:
    if served.inbox is None:
        raise HTTPException(404, "this service takes no feedback (started without an inbox)")
    try:
        client = served.access.client(request.headers.get("authorization"), request.client and request.client.host,
                                      request.headers.get("x-forwarded-for"))
        item = await take_feedback(request, served.inbox, served.holder.current(), client)
    except Refused as refused:
        served.metrics.feedback_refused.labels(str(refused.status)).inc()
        raise HTTPException(refused.status, refused.reason) from None
    served.metrics.feedback.inc()
    return item


@router.get("/health")
def health(served: Service = Depends(service)) -> dict[str, Any]:
    predictor = served.holder.current()
    return {"status": "ok", "model": predictor and {"path": served.holder.name, "sha256": predictor.sha256}}


@router.get("/ready", **openapi.READY)
def ready(served: Service = Depends(service)) -> Any:
    reason = served.holder.unready()
    if reason is not None:
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)
    return {"ready": True, "model": {"sha256": served.holder.current().sha256}}


@router.get("/monitoring/window", **openapi.MODEL_NEEDED)
def served_window(served: Service = Depends(service)) -> dict[str, Any]:
    """What the service answered lately (no pictures): the drift check's input (flows/monitor.py)."""
    return served.window.snapshot(served.holder.serving().labels)


@router.get("/monitoring/shadow", **openapi.SHADOW)
def shadowed(served: Service = Depends(service)) -> dict[str, Any]:
    """How the shadow answered beside the champion: the judge-shadow flow's input (flows/judge_shadow.py)."""
    if served.shadow is None:
        raise HTTPException(404, "this service shadows nothing (started with --shadow-fraction 0)")
    return served.shadow.snapshot()


@router.get("/metrics", **openapi.METRICS)
def prometheus(served: Service = Depends(service)) -> Any:
    if not served.metrics.enabled:
        raise HTTPException(404, "metrics are off for this service")
    served.holder.current()  # a champion replaced since the last request shows in this scrape
    body, kind = served.metrics.exposition()
    return Response(body, media_type=kind)


@router.get("/model", **openapi.MODEL_NEEDED)
def model(served: Service = Depends(service)) -> dict[str, Any]:
    predictor = served.holder.serving()
    return {"path": served.holder.name, "sha256": predictor.sha256, "labels": predictor.labels,
            "dataset": predictor.record.get("dataset"), "architecture": predictor.record["architecture"],
            **beside(predictor, served.files)}


@router.get("/", response_class=HTMLResponse)
def index(served: Service = Depends(service)) -> str:
    return served.page


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
    try:
        correction = correction_from_json(payload)
    except ValueError as exc:
        raise Refused(422, str(exc)) from None
    image = correction.image
    encoded = image.split(",", 1)[1] if image.startswith("data:") else image
    try:
        picture = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(422, "image: not valid base64") from None
    labels = predictor.labels if predictor is not None else class_labels(None)
    return await run_in_threadpool(inbox.add, picture, correction.label, correction.model_sha256,
                                   correction.predicted, labels, predictor and predictor.sha256, client)


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
