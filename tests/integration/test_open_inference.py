"""The Open Inference Protocol's /v2 routes, on a real uvicorn, through the de facto client
unmodified (``tritonclient[http]``), through raw HTTP for what a client should not send,
and through a schema fuzzer.

The service serves a registry's champion, version 1, so the versioned routes are reached.
"""

from __future__ import annotations

import gzip
import json
import struct

import httpx
import numpy as np
import pytest
import schemathesis
import torch
import tritonclient.http as triton
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance
from tritonclient.utils import InferenceServerException

from harness.real_parts import Service
from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from mnistflow import atomic
from mnistflow.inference import softmax
from tests.helpers import make_arrays

PIXELS = make_arrays(n_train=1, n_test=6, seed=3)["test-images"]  # six digits of the generated classes
INFER = "/v2/models/mnistflow/infer"


@pytest.fixture(scope="module")
def live(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("v2")
    champions = RegistryPaths(folder / "registry")
    registry.promote(trained, champions, {"run_id": "r1", "time": registry.now()})
    with Service(None, folder, args=("--registry", str(champions.dir))) as service:
        service.registry = champions
        yield service


@pytest.fixture
def client(live):
    client = triton.InferenceServerClient(url=live.url.removeprefix("http://"))
    yield client
    client.close()


def test_the_standard_client_finds_the_server_and_the_models_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnistflow") and client.is_model_ready("mnistflow", "1")
    assert not client.is_model_ready("mnistflow", "2") and not client.is_model_ready("another")
    server = client.get_server_metadata()
    assert server["name"] == "mnistflow" and "binary_tensor_data" in server["extensions"]
    model = client.get_model_metadata("mnistflow")
    assert model == client.get_model_metadata("mnistflow", "1")
    assert model["versions"] == ["1"] and model["inputs"] == [{"name": "pixels", "datatype": "FP32",
                                                               "shape": [-1, 1, 28, 28]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in model["outputs"]] == [
        ("logits", "FP32", [-1, 10]), ("probabilities", "FP32", [-1, 10]), ("label", "BYTES", [-1])]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("mnistflow", "7")
    assert missing.value.status() == "404" and "version 7: not loaded (loaded: 1)" in missing.value.message()


@pytest.mark.parametrize("binary_in, binary_out", [(True, True), (True, False), (False, True), (False, False)])
def test_infer_gives_predicts_answers_bit_for_bit(live, client, binary_in, binary_out):
    pixels = (PIXELS.astype(np.float32) / 255)[:, None]
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary_in)
    wanted = [triton.InferRequestedOutput(name, binary_data=binary_out) for name in ("logits", "probabilities", "label")]
    result = client.infer("mnistflow", [tensor], outputs=wanted, request_id="batch-1")
    answer = result.get_response()
    assert answer["model_name"] == "mnistflow" and answer["model_version"] == "1" and answer["id"] == "batch-1"
    assert all(("parameters" in o) == binary_out and ("data" in o) != binary_out for o in answer["outputs"])

    predicted = httpx.post(f"{live.url}/predict", json={"pixels": pixels[:, 0].tolist()}, timeout=30)
    ours = np.array([p["probabilities"] for p in predicted.json()["predictions"]], dtype=np.float32)
    probabilities, logits = result.as_numpy("probabilities"), result.as_numpy("logits")
    assert probabilities.dtype == logits.dtype == np.float32 and logits.shape == (6, 10)
    assert np.array_equal(probabilities, ours)  # bit for bit: the same model, the same batch
    assert np.array_equal(softmax(torch.tensor(logits)), ours)  # the logits are the ones behind /predict's answers
    labels = [b.decode() if isinstance(b, bytes) else b for b in result.as_numpy("label")]  # binary: bytes
    assert labels == [p["label"] for p in predicted.json()["predictions"]]
    assert predicted.headers["x-model-sha256"] == predicted.json()["model"]["sha256"]


def test_uint8_pixels_the_default_call_and_a_gzipped_request(client):
    raw = PIXELS[:, None]
    as_bytes = triton.InferInput("pixels", list(raw.shape), "UINT8")
    as_bytes.set_data_from_numpy(raw)
    as_floats = triton.InferInput("pixels", list(raw.shape), "FP32")
    as_floats.set_data_from_numpy(raw.astype(np.float32) / 255)
    default = client.infer("mnistflow", [as_floats])  # no outputs named: every output, as binary data
    assert {o["name"] for o in default.get_response()["outputs"]} == {"logits", "probabilities", "label"}
    assert np.array_equal(client.infer("mnistflow", [as_bytes]).as_numpy("logits"), default.as_numpy("logits"))
    squeezed = client.infer("mnistflow", [as_floats], request_compression_algorithm="gzip")
    assert np.array_equal(squeezed.as_numpy("logits"), default.as_numpy("logits"))
    only = client.infer("mnistflow", [as_floats], outputs=[triton.InferRequestedOutput("label")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["label"]  # only what was asked for


def body(pixels: np.ndarray, datatype: str = "FP32", **fields) -> dict:
    tensor = {"name": "pixels", "shape": list(pixels.shape), "datatype": datatype, "data": pixels.ravel().tolist()}
    return {"inputs": [{**tensor, **fields.pop("tensor", {})}], **fields}


ONE = np.zeros((1, 1, 28, 28), np.float32)
JSON_HEAD = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 3136}}]}).encode()


@pytest.mark.parametrize("path, kwargs, status, says", [
    (INFER, {"content": b"not json"}, 400, "body is not valid JSON"),
    (INFER, {"json": {"inputs": [{"name": "image"}]}}, 400, "the model takes one input, 'pixels'"),
    (INFER, {"json": body(ONE[:, 0])}, 400, "shape [1, 28, 28]; give [N, 1, 28, 28]"),
    (INFER, {"json": body(ONE, "FP64")}, 400, 'datatype "FP64"; give FP32'),
    (INFER, {"json": body(ONE + 2)}, 400, "image 0, row 0, column 0 is 2.0; values must be in [0, 1]"),
    (INFER, {"json": body(ONE, tensor={"data": ["0"] * 784})}, 400, '"0" is a str, not a number'),
    (INFER, {"json": body(ONE, "UINT8", tensor={"data": [300] * 784})}, 400, "not an integer in 0..255"),
    (INFER, {"json": body(ONE, outputs=[{"name": "embedding"}])}, 400, '"embedding" is not an output'),
    (INFER, {"json": body(np.zeros((1025, 1, 28, 28), np.uint8), "UINT8")}, 413, "at most 1024 per request"),
    (INFER, {"content": JSON_HEAD + b"\0" * 100, "headers": {"Inference-Header-Content-Length": str(len(JSON_HEAD))}},
     400, "binary_data_size 3136; [1, 1, 28, 28] FP32 is 3136 bytes, and 100 follow"),
    (INFER, {"content": JSON_HEAD, "headers": {"Inference-Header-Content-Length": "99999"}}, 400,
     "not a length within the body"),
    (INFER, {"content": b"x", "headers": {"Content-Encoding": "br"}}, 415, "Content-Encoding br"),
    (INFER, {"content": gzip.compress(b" " * (9 * 2**20)), "headers": {"Content-Encoding": "gzip"}}, 413,
     "inflates past the limit"),
    ("/v2/models/mnistflow/versions/2/infer", {"json": body(ONE)}, 404, "version 2: not loaded"),
    ("/v2/models/other/infer", {"json": body(ONE)}, 404, "'other': not served here"),
    ("/v2/repository/index", {"json": {}}, 404, "Not Found"),
])
def test_bad_requests_are_a_4xx_with_the_protocols_error_body(live, path, kwargs, status, says):
    response = httpx.post(f"{live.url}{path}", timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert says in response.json()["error"] and set(response.json()) == {"error"}


def test_a_bytes_output_is_length_prefixed(live):
    response = httpx.post(f"{live.url}{INFER}", json=body(ONE, outputs=[{"name": "label",
                                                                         "parameters": {"binary_data": True}}]))
    head = int(response.headers["inference-header-content-length"])
    (output,) = json.loads(response.content[:head])["outputs"]
    raw = response.content[head:]
    assert response.headers["x-model-sha256"] == atomic.sha256_of(live.registry.champion_model)
    assert output["parameters"]["binary_data_size"] == len(raw) and struct.unpack("<I", raw[:4])[0] == len(raw) - 4


def test_a_promotion_is_the_next_version_and_the_first_is_gone(live, client, trained, tmp_path):
    before = client.get_model_metadata("mnistflow")["versions"]
    registry.promote(trained, live.registry, {"run_id": "r2", "time": registry.now()})
    number = str(int(before[0]) + 1)
    assert client.get_model_metadata("mnistflow")["versions"] == [number]
    assert client.is_model_ready("mnistflow", number) and not client.is_model_ready("mnistflow", before[0])


def test_a_schema_fuzzer_finds_no_5xx_on_the_v2_routes(live):
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if result.ok().path.startswith("/v2")]
    assert {op.path for op in operations} >= {"/v2", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}"}
    for operation in operations:
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def call(case):
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = "mnistflow"  # the model's routes, not only their 404
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance], timeout=30)

        call()
    assert "Traceback" not in live.output()
