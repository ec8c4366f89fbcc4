"""The Open Inference Protocol's REST routes (``/v2``), beside the service's own.

The model is served under one name (``--model-name``, default ``mnistflow``), and
its version is the registry version in service (a champion's; a model file given
by hand has none). A version that is not the loaded one is a 404. Every refusal
is a 4xx with the protocol's ``{"error": ...}`` body (``v2_error`` is the app's
handler for them), and the service's limits apply: the body's bytes, the batch,
the pixels' range. The request and response formats are ``serving.open_inference``.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version as package_version
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mnistflow.errors import MnistflowError
from mnistflow.inference import Predictor, softmax

from . import open_inference, openapi
from .answers import answers
from .bodies import MAX_BATCH, read_body
from .open_inference import ProtocolError
from .routes import MODEL_HEADER, Service, answered, service

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol"])
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "pytorch"  # the service answers with the PyTorch model; the ONNX file is the model repository's


def check_model_name(name: str) -> str:
    """A name that fits in a URL's path segment and a Triton model repository's folder."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise MnistflowError(f"--model-name {name[:70]!r}: use 1-64 letters, digits, '_', '.' or '-', starting "
                             "with a letter or digit")
    return name


def server_version() -> str:
    try:
        return package_version("mnistflow")
    except PackageNotFoundError:
        return "unknown"


def loaded(served: Service, name: str, version: str | None) -> tuple[Predictor, str | None]:
    """The model for ``name`` (and ``version``, when the URL gives one), or the protocol's error."""
    if name != served.model_name:
        raise ProtocolError(404, f"model {name[:64]!r}: not served here (models: {served.model_name})")
    predictor = served.holder.current()
    if predictor is None:
        raise ProtocolError(503 if version is None else 404, f"model {name}: no model loaded yet")
    loaded_version = served.holder.version(predictor)
    if version is not None and version != loaded_version:
        raise ProtocolError(404, f"model {name} version {version[:20]}: not loaded (loaded: "
                                 f"{loaded_version or 'a model file with no registry version'})")
    return predictor, loaded_version


@router.get("")
def server_metadata() -> dict[str, Any]:
    return {"name": "mnistflow", "version": server_version(), "extensions": EXTENSIONS}


@router.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", **openapi.V2_READY)
def ready(served: Service = Depends(service)) -> Any:
    reason = served.holder.unready()
    if reason is not None:
        raise ProtocolError(503, reason)
    return {"ready": True}


@router.get("/models/{name}", **openapi.V2_MODEL)
def model_metadata(name: str, served: Service = Depends(service)) -> dict[str, Any]:
    return metadata(served, name, None)


@router.get("/models/{name}/versions/{version}", **openapi.V2_MODEL)
def model_version_metadata(name: str, version: str, served: Service = Depends(service)) -> dict[str, Any]:
    return metadata(served, name, version)


@router.get("/models/{name}/ready", **openapi.V2_MODEL_READY)
def model_ready(name: str, served: Service = Depends(service)) -> dict[str, Any]:
    return readiness(served, name, None)


@router.get("/models/{name}/versions/{version}/ready", **openapi.V2_MODEL_READY)
def model_version_ready(name: str, version: str, served: Service = Depends(service)) -> dict[str, Any]:
    return readiness(served, name, version)


@router.post("/models/{name}/infer", **openapi.V2_INFER)
async def model_infer(name: str, request: Request, served: Service = Depends(service)) -> Response:
    return await infer(served, request, name, None)


@router.post("/models/{name}/versions/{version}/infer", **openapi.V2_INFER)
async def model_version_infer(name: str, version: str, request: Request, served: Service = Depends(service)) -> Response:
    return await infer(served, request, name, version)


def metadata(served: Service, name: str, version: str | None) -> dict[str, Any]:
    predictor, loaded_version = loaded(served, name, version)
    height, width = predictor.input_shape
    classes = len(predictor.labels)
    return {"name": served.model_name, "versions": [loaded_version] if loaded_version else [], "platform": PLATFORM,
            "inputs": [{"name": open_inference.INPUT, "datatype": "FP32", "shape": [-1, 1, height, width]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, classes]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
                        {"name": "label", "datatype": "BYTES", "shape": [-1]}]}


def readiness(served: Service, name: str, version: str | None) -> dict[str, Any]:
    loaded(served, name, version)
    reason = served.holder.unready()
    if reason is not None:
        raise ProtocolError(503, reason)
    return {"name": served.model_name, "ready": True}


async def infer(served: Service, request: Request, name: str, version: str | None) -> Response:
    predictor, loaded_version = loaded(served, name, version)  # one model for the whole request
    try:
        body = await read_body(request, served.max_upload_bytes)
    except HTTPException as exc:
        raise ProtocolError(exc.status_code, str(exc.detail)) from None
    body = open_inference.decoded(body, request.headers.get("content-encoding"), served.max_upload_bytes)
    parsed = open_inference.parse(body, request.headers.get(open_inference.HEADER_LENGTH), predictor.input_shape,
                                  MAX_BATCH)
    outputs = await run_in_threadpool(answer, served, predictor, parsed.pixels)
    content, headers = open_inference.response(served.model_name, loaded_version, parsed, outputs)
    return Response(content, headers={**headers, MODEL_HEADER: predictor.sha256})


def answer(served: Service, predictor: Predictor, pixels: Any) -> dict[str, tuple[str, Any]]:
    """The batch's outputs; counted, kept in the window and shadowed as /predict's answers are."""
    logits = predictor.logits(pixels)
    probabilities = softmax(logits)
    answered(served, predictor, pixels, answers(predictor, pixels, probabilities))
    return open_inference.outputs_of(logits.numpy(), probabilities, predictor.labels)


def v2_error(request: Request, exc: Exception) -> Response:
    """The protocol's error body, for a ``ProtocolError`` and for any HTTP error under /v2."""
    if isinstance(exc, ProtocolError):
        status, message = exc.status, exc.message
    else:
        status, message = getattr(exc, "status_code", 500), str(getattr(exc, "detail", exc))
    return JSONResponse({"error": message}, status_code=status)
