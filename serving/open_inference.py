"""The Open Inference Protocol's inference request and response (KServe's "V2" REST
protocol, spoken by Triton, KServe, Seldon MLServer, OpenVINO Model Server), with
the binary tensor data extension.

Specification: kserve/open-inference-protocol, ``specification/protocol/
open_inference_rest.yaml`` and ``inference_rest.md``, and Triton's
``extension_binary_data.md``. What mnistflow's model takes and gives:

- input ``pixels``: ``[N, 1, H, W]``, FP32 in [0, 1] (as the ONNX file takes it)
  or UINT8 in 0..255, light on dark; as JSON ``data`` (flat or nested, row major)
  or as binary data after the JSON (``parameters.binary_data_size``);
- outputs ``logits`` and ``probabilities`` (FP32 ``[N, classes]``) and ``label``
  (BYTES ``[N]``, the class names): those the request names, else all; each as
  JSON, or as binary when asked (``binary_data`` on the output, or
  ``binary_data_output`` on the request, which is what the standard client sends).

A request's JSON part and binary part are split at ``Inference-Header-Content-Length``;
a response with binary outputs gives the same header. Every refusal is a
``ProtocolError``: an HTTP status and the one line of the protocol's ``{"error": ...}``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bodies import json_body, numbers_only, out_of_range

INPUT = "pixels"
OUTPUTS = ("logits", "probabilities", "label")
DATATYPES = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
HEADER_LENGTH = "inference-header-content-length"


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class InferRequest:
    pixels: np.ndarray  # N x H x W, float32 in [0, 1]
    outputs: dict[str, bool]  # requested output -> as binary data
    id: str | None = None


def decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body, inflated when the client compressed it (the standard client may), never past ``limit``."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise ProtocolError(415, f"Content-Encoding {encoding[:40]}: send gzip, deflate or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ProtocolError(400, f"body: not valid {encoding} data") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise ProtocolError(413, f"request body inflates past the limit of {limit:,} bytes")
    return inflated


def parse(body: bytes, header_length: str | None, shape: tuple[int, int], max_batch: int) -> InferRequest:
    """The request in ``body``, checked against the model's input ``shape`` (H, W)."""
    json_part, binary = _split(body, header_length)
    try:
        request = json_body(json_part)
    except ValueError as exc:
        raise ProtocolError(400, str(exc)) from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError(400, 'body: an inference request is a JSON object with "inputs": a list of tensors')
    parameters = _object(request.get("parameters", {}), "parameters")
    names = [tensor.get("name") if isinstance(tensor, dict) else None for tensor in request["inputs"]]
    if names != [INPUT]:
        raise ProtocolError(400, f"inputs: {json.dumps(names)[:80]}; the model takes one input, {INPUT!r}")
    pixels, used = _pixels(request["inputs"][0], binary, shape, max_batch)
    if used != len(binary):
        raise ProtocolError(400, f"body: {len(binary) - used} bytes after the JSON that no input's "
                                 "binary_data_size accounts for")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(400, "id: a string")
    return InferRequest(pixels, _requested(request.get("outputs"), parameters), request_id)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise ProtocolError(400, f"Inference-Header-Content-Length {header_length[:20]}: not a length within "
                                 f"the body's {len(body)} bytes")
    return body[:int(header_length)], body[int(header_length):]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{where}: a JSON object")
    return value


def _pixels(tensor: dict[str, Any], binary: bytes, shape: tuple[int, int], max_batch: int) -> tuple[np.ndarray, int]:
    """The input as N x H x W float32 in [0, 1], and how many binary bytes it took."""
    where = f"inputs[0] {INPUT}"
    datatype, dims = tensor.get("datatype"), tensor.get("shape")
    if datatype not in DATATYPES:
        raise ProtocolError(400, f"{where}: datatype {json.dumps(datatype)[:30]}; give FP32 (in [0, 1]) or "
                                 "UINT8 (0..255)")
    wanted = [1, *shape]
    if (not isinstance(dims, list) or len(dims) != 4 or not all(type(d) is int for d in dims)
            or dims[1:] != wanted or dims[0] < 1):
        raise ProtocolError(400, f"{where}: shape {json.dumps(dims)[:60]}; give [N, {', '.join(map(str, wanted))}]")
    if dims[0] > max_batch:
        raise ProtocolError(413, f"{where}: {dims[0]} images; at most {max_batch} per request")
    count, dtype = int(np.prod(dims)), DATATYPES[datatype]
    size = _object(tensor.get("parameters", {}), f"{where} parameters").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or size > len(binary):
            raise ProtocolError(400, f"{where}: binary_data_size {json.dumps(size)[:20]}; {dims} {datatype} is "
                                     f"{count * dtype.itemsize} bytes, and {len(binary)} follow the JSON")
        values, used = np.frombuffer(binary, dtype, count), size
    else:
        values, used = _json_values(tensor.get("data"), count, dtype, where), 0
    if datatype == "UINT8":
        pixels = values.astype(np.float32) / 255
    else:
        pixels = values.astype(np.float32)
        bad = out_of_range(pixels.reshape(dims[0], *shape))
        if bad:
            raise ProtocolError(400, f"{where}: {bad}")
    return pixels.reshape(dims[0], *shape), used


def _json_values(data: Any, count: int, dtype: np.dtype, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(400, f"{where}: no data: give \"data\" or parameters.binary_data_size")
    wrong = numbers_only(data, depth=4)
    if wrong:
        raise ProtocolError(400, f"{where}: {wrong}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.asarray(data, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(400, f"{where}: data is not a row-major list of equal-length lists") from None
    if len(values) != count:
        raise ProtocolError(400, f"{where}: {len(values)} values in data; the shape says {count}")
    if dtype == np.uint8 and (~np.isfinite(values) | (values < 0) | (values > 255) | (values % 1 != 0)).any():
        raise ProtocolError(400, f"{where}: UINT8 data holds a value that is not an integer in 0..255")
    return values


def _requested(outputs: Any, parameters: dict[str, Any]) -> dict[str, bool]:
    every_binary = parameters.get("binary_data_output", False)
    if not isinstance(every_binary, bool):
        raise ProtocolError(400, "parameters: binary_data_output is true or false")
    if outputs is None:
        return {name: every_binary for name in OUTPUTS}
    if not isinstance(outputs, list) or not outputs:
        raise ProtocolError(400, "outputs: a list of {\"name\": ...}, or none for every output")
    requested: dict[str, bool] = {}
    for n, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise ProtocolError(400, f"outputs[{n}]: {json.dumps(name)[:40]} is not an output of the model "
                                     f"(outputs: {', '.join(OUTPUTS)})")
        binary = _object(output.get("parameters", {}), f"outputs[{n}] parameters").get("binary_data", every_binary)
        if not isinstance(binary, bool):
            raise ProtocolError(400, f"outputs[{n}] parameters: binary_data is true or false")
        requested[name] = binary
    return requested


def outputs_of(logits: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict[str, tuple[str, Any]]:
    """Every output of a batch, by name: (datatype, values)."""
    return {"logits": ("FP32", logits), "probabilities": ("FP32", probabilities),
            "label": ("BYTES", [labels[i] for i in probabilities.argmax(axis=1)])}


def response(model_name: str, version: str | None, request: InferRequest,
             outputs: dict[str, tuple[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: the requested outputs, in the request's order, each
    as JSON or after the JSON as binary data."""
    described, chunks = [], []
    for name, binary in request.outputs.items():
        datatype, values = outputs[name]
        shape = list(np.shape(values)) if datatype != "BYTES" else [len(values)]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw = _binary(datatype, values)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = list(values) if datatype == "BYTES" else np.asarray(values).reshape(-1).tolist()
        described.append(tensor)
    answer: dict[str, Any] = {"model_name": model_name, "outputs": described}
    if version is not None:
        answer["model_version"] = version
    if request.id is not None:
        answer["id"] = request.id
    head = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def _binary(datatype: str, values: Any) -> bytes:
    if datatype == "BYTES":  # each element: its length as a 4-byte little-endian unsigned int, then its bytes
        return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in values))
    return np.ascontiguousarray(values, dtype=DATATYPES[datatype]).tobytes()

