"""What the OpenAPI document says of the routes that take a body: the bodies they take and every answer they give.

The routes read their bodies themselves, as bytes, so that the byte and pixel
budgets come before any parsing (``/predict`` takes four kinds of body). So
FastAPI cannot see them: the JSON bodies are pydantic models (serving.bodies),
and their JSON schemas are what the document gives; a schema fuzzer (schemathesis,
tests/integration/test_service_bounds.py) then reaches the real inputs, and finds no status
the document does not list.
"""

from __future__ import annotations

from typing import Any

from .bodies import Correction, Pixels

ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **ERROR}


BINARY = {"schema": {"type": "string", "format": "binary"}}

PREDICT = {
    "openapi_extra": {"requestBody": {"required": True, "content": {
        "application/json": {"schema": Pixels.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "image/png": BINARY,
        "image/jpeg": BINARY,
        "application/octet-stream": BINARY,
    }}},
    "responses": {
        400: _error("the body is not valid JSON"),
        413: _error("the body, the images or their pixels are over the limits"),
        415: _error("a content type the service does not take"),
        422: _error("pixels or a picture that cannot be used (the detail names which, and why)"),
        503: _error("no model loaded yet"),
    },
}

FEEDBACK = {
    "openapi_extra": {"requestBody": {"required": True, "content": {
        "application/json": {"schema": Correction.model_json_schema()}}}},
    "responses": {
        400: _error("the body is not valid JSON"),
        401: _error("a token the service does not know, or none where it takes named clients only"),
        404: _error("this service takes no corrections"),
        413: _error("the body or the picture is over the limits"),
        415: _error("not application/json"),
        422: _error("a field that cannot be used (the detail names which)"),
        429: _error("too many corrections a minute from this client"),
        507: _error("the inbox is full"),
    },
}

MODEL_NEEDED = {"responses": {503: _error("no model loaded yet")}}
READY = {"responses": {503: {"description": "not ready: no model, or the file changed since it loaded"}}}
METRICS = {"responses": {404: _error("metrics are off for this service")}}
SHADOW = {"responses": {404: _error("this service shadows nothing")}}


# The Open Inference Protocol's routes (serving.v2_routes): its error body, and its
# inference request's schema as the specification gives it (open_inference_rest.yaml),
# written out here because the route reads the body itself (JSON, then binary tensors).
V2_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}


def _v2_error(description: str) -> dict[str, Any]:
    return {"description": description, **V2_ERROR}


_TENSOR_DATA = {"type": "array", "items": {}}
_PARAMETERS = {"type": "object"}
INFERENCE_REQUEST = {
    "type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
            "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"}, "parameters": _PARAMETERS, "data": _TENSOR_DATA}}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": _PARAMETERS}}},
    }}

V2_MODEL = {"responses": {404: _v2_error("no model of that name, or that version is not loaded"),
                          503: _v2_error("no model loaded yet")}}
V2_READY = {"responses": {503: _v2_error("not ready: no model, or the file changed since it loaded")}}
V2_MODEL_READY = {"responses": {**V2_MODEL["responses"], **V2_READY["responses"]}}
V2_INFER = {
    "openapi_extra": {"requestBody": {"required": True, "content": {
        "application/json": {"schema": INFERENCE_REQUEST},
        "application/octet-stream": BINARY,  # the JSON, then binary tensors (Inference-Header-Content-Length)
    }}},
    "responses": {
        200: {"description": "the requested outputs", "content": {
            "application/json": {"schema": {"type": "object"}}, "application/octet-stream": BINARY}},
        400: _v2_error("a request the model cannot take (the error names the field)"),
        404: _v2_error("no model of that name, or that version is not loaded"),
        413: _v2_error("the body or the batch is over the limits"),
        415: _v2_error("a Content-Encoding the service does not take"),
        503: _v2_error("no model loaded yet"),
    },
}
