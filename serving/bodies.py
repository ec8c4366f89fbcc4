"""Request bodies, read within bounds before they are parsed: the byte limit first,
then JSON or a multipart form, then pixels or pictures (pictures within the
decoders' shared budget, serving.decoding). Every refusal is an HTTPException
with a one-line detail naming what is wrong.

The JSON bodies are pydantic models, whose schemas the OpenAPI document gives
(serving.openapi). A correction is validated by its model, and a field's
description is also the line that refuses it. Pixels are checked by hand: a
batch is up to 1024 x 784 numbers, which numpy checks at once, and a refusal
names the image, row and column that is out of range."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from mnistflow.model_repository import MAX_BATCH_SIZE
from pictures.imaging import ImageError, to_model_input

from .decoding import TooManyPixels, decode_within_budget

MAX_UPLOAD_BYTES = 8 * 2**20  # a request body; a batch of 256 PNG digits is well under 1 MiB
MAX_BATCH = MAX_BATCH_SIZE  # images per request, as the exported model repository declares
MAX_PREDICTED_CHARS = 64

Image = list[float]                  # H*W values
Rows = list[list[float]]             # H rows of W, or a list of flat images
Images = list[list[list[float]]]     # a list of images as rows


class Pixels(BaseModel):
    """POST /predict's JSON body (its schema; pixels_from_json checks it)."""

    pixels: Image | Rows | Images = Field(
        description="one image (H*W values, or H rows of W) or a list of images; values in [0, 1], light on dark")


class Correction(BaseModel):
    """POST /feedback's body: a correction from the page. Each description is also
    the one line that refuses a bad value of its field."""

    model_config = ConfigDict(extra="forbid", strict=True)  # an unknown field is refused, never stored

    image: str = Field(description="required, the picture as a PNG data URL or base64")
    label: int | str = Field(description="required, the right class: its number or its name")
    model_sha256: str = Field(pattern="^[0-9a-f]{64}$",
                              description="required, the sha256 of the model that answered (64 hex digits)")
    predicted: str | None = Field(None, max_length=MAX_PREDICTED_CHARS, description=(
        f"the label the model answered, at most {MAX_PREDICTED_CHARS} characters"))


def correction_from_json(payload: Any) -> Correction:
    """The correction, or a ValueError whose message is one line naming the first bad field."""
    try:
        return Correction.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            raise ValueError(f"{field[:40]!r}: not a field of a correction "
                             f"(fields: {', '.join(Correction.model_fields)})") from None
        if field not in Correction.model_fields:  # not an object at all
            raise ValueError("body: a correction is a JSON object with image, label and model_sha256") from None
        raise ValueError(f"{field}: {Correction.model_fields[field].description}") from None


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


def numbers_only(values: Any, depth: int) -> str | None:
    """What is wrong with ``values`` as lists (at most ``depth`` deep) of numbers, or None: a
    string or a boolean is never a pixel."""
    stack = [(values, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, list):
            if level == depth:
                return f"nested more than {depth} deep"
            stack.extend((item, level + 1) for item in value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{json.dumps(value)[:40]} is a {type(value).__name__}, not a number"
    return None


def out_of_range(pixels: np.ndarray) -> str | None:
    """The first pixel (image, row, column) of N x H x W outside [0, 1], said in a line, or None."""
    bad = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 1)
    if not bad.any():
        return None
    image, row, col = (int(i) for i in np.argwhere(bad)[0])
    return f"image {image}, row {row}, column {col} is {pixels[image, row, col]}; values must be in [0, 1] (255 -> 1.0)"


def pixels_from_json(payload: Any, shape: tuple[int, int]) -> np.ndarray:
    """N x H x W from ``{"pixels": ...}``, or a 422 naming what is wrong."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise HTTPException(422, 'JSON body must be an object with "pixels": one image or a list of images')
    wrong = numbers_only(payload["pixels"], depth=3)
    if wrong:
        raise HTTPException(422, f"pixels: {wrong}; " + (
            "give one image or a list of images" if wrong.startswith("nested") else "pixels are numbers in [0, 1]"))
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
    bad = out_of_range(pixels)
    if bad:
        raise HTTPException(422, f"pixels: {bad}")
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
