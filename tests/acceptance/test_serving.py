"""The HTTP service: the API through FastAPI's TestClient, then a real uvicorn process,
and a promotion while requests run.

Here: the cases on the real MNIST; the others are in tests/unit/test_serving.py.
"""

from __future__ import annotations

import io
import json
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.real_parts import Service
from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from mnistflow.idx import read_idx
from mnistflow.inference import Predictor
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from serving.bodies import MAX_BATCH
from serving.service import create_app
from tests.conftest import run_stages
from tests.helpers import clean_env, run, tiny_params


@pytest.fixture(scope="module")
def images(mnist_run) -> np.ndarray:
    return read_idx(next((mnist_run.dir.parent / "data/mnist").glob("t10k-images*")), 3)[:64]


@pytest.fixture(scope="module")
def client(mnist_run):
    from fastapi.testclient import TestClient

    with TestClient(create_app(mnist_run.model, max_upload_bytes=200_000)) as client:
        yield client


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_uploads_raw_bodies_and_json_pixels_give_the_models_answers(client, mnist_run, images):
    predictor = Predictor.load(mnist_run.model)
    expected = predictor.answers(images[:4] / 255.0)
    upload = client.post("/predict", files=[("file", (f"{i}.png", png(im), "image/png")) for i, im in enumerate(images[:4])])
    raw = client.post("/predict", content=png(images[0]), headers={"Content-Type": "image/png"})
    one = client.post("/predict", json={"pixels": (images[0] / 255.0).ravel().tolist()})
    rows = client.post("/predict", json={"pixels": (images[0] / 255.0).tolist()})
    batch = client.post("/predict", json={"pixels": (images[:4] / 255.0).reshape(4, -1).tolist()})
    for response in (upload, raw, one, rows, batch):
        assert response.status_code == 200, response.text
        assert response.json()["model"]["sha256"] == predictor.sha256
    assert [p["label"] for p in upload.json()["predictions"]] == [e["label"] for e in expected]
    assert raw.json()["predictions"][0]["label"] == expected[0]["label"]
    for response in (one, rows):  # one image, as 784 values or as 28 rows
        (answer,) = response.json()["predictions"]
        assert answer["label"] == expected[0]["label"]
        assert np.allclose(answer["probabilities"], expected[0]["probabilities"], atol=1e-6)
    answers = batch.json()["predictions"]
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert np.allclose([a["probabilities"] for a in answers], [e["probabilities"] for e in expected], atol=1e-6)
    assert all(len(a["top"]) == 3 and abs(sum(a["probabilities"]) - 1) < 1e-5 for a in answers)


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, "PNG")  # 25 megapixels in about 25 KB
    return buffer.getvalue()


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"files": {"file": ("notes.txt", b"just text", "text/plain")}}, 422, "upload notes.txt: not an image"),
    ({"content": b"\x89PNG\r\n\x1a\n broken", "headers": {"Content-Type": "image/png"}}, 422, "body: "),
    ({"content": bomb(), "headers": {"Content-Type": "image/png"}}, 422, "5000x5000 pixels is more than"),
    ({"content": b"\0" * 300_000, "headers": {"Content-Type": "image/png"}}, 413, "the limit is 200,000"),
    ({"json": {"pixels": [0.5] * 783}}, 422, "pixels: shape [783]; give 784 values"),
    ({"json": {"pixels": [[0.0] * 784, [0.0] * 10]}}, 422, "pixels: not a (list of) equal-length lists"),
    ({"json": {"pixels": [0.0] * 783 + [255]}}, 422, "pixels: image 0, row 27, column 27 is 255.0; values must be in [0, 1]"),
    ({"json": {"pixels": [[-0.1] * 784]}}, 422, "is -0.1"),
    ({"json": {"image": [0.0] * 784}}, 422, 'an object with "pixels"'),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "body is not valid JSON"),
    ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "content type text/plain"),
    ({"files": {"name": (None, b"no file here")}}, 422, "multipart body has no file"),
])
def test_bad_requests_get_a_4xx_that_says_why(client, request_kwargs, status, message):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_too_many_images_in_one_request(mnist_run):
    from fastapi.testclient import TestClient

    with TestClient(create_app(mnist_run.model)) as client:  # the default body limit lets it through
        response = client.post("/predict", json={"pixels": [[0] * 784] * (MAX_BATCH + 1)})
    assert response.status_code == 413 and f"at most {MAX_BATCH} per request" in response.json()["detail"]


def test_an_oversized_body_without_a_length_is_cut_off(client):
    def chunks():  # chunked transfer: no Content-Length to refuse up front
        for _ in range(40):
            yield b"\0" * 10_000

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "image/png"})
    assert response.status_code == 413 and "over the limit of 200,000 bytes" in response.json()["detail"]


def test_health_model_and_page(client, mnist_run):
    sha256 = Predictor.load(mnist_run.model).sha256
    assert client.get("/health").json() == {"status": "ok", "model": {"path": "model.pt", "sha256": sha256}}
    described = client.get("/model").json()
    assert described["sha256"] == sha256 and described["labels"] == [str(d) for d in range(10)]
    assert described["metrics"] == json.loads(mnist_run.metrics.read_text())
    assert described["evaluation"] == json.loads(mnist_run.evaluation.read_text())
    assert described["card"] == mnist_run.card.read_text()
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and 'id="clear"' in page.text


def test_a_real_uvicorn_process_answers_and_a_missing_model_file_is_one_line(mnist_run, images, tmp_path):
    with Service(mnist_run.model, tmp_path) as service:
        response = httpx.post(f"{service.url}/predict", files={"file": ("d.png", png(images[1]), "image/png")})
        assert response.status_code == 200
        assert response.json()["predictions"][0]["label"] == Predictor.load(mnist_run.model).answers(
            images[1:2] / 255.0)[0]["label"]
        assert httpx.get(f"{service.url}/").headers["content-type"].startswith("text/html")
    result = run([__import__("sys").executable, "-m", "serving.service", "--model", "typo.pt"], tmp_path, clean_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "mnistflow: error: --model: typo.pt: no such model file"


def test_a_promotion_switches_the_service_without_a_failed_or_mixed_answer(mnist_run, images, tmp_path, dataset):
    """The old champion is the real-MNIST model; the new one is a different network. A
    bounded loop of batch requests runs while the promotion replaces model.pt."""
    champion = RegistryPaths(tmp_path / "registry")
    registry.promote(mnist_run, champion, {"run_id": "old"})
    directory, checksums = dataset
    challenger = run_stages(validate(tiny_params(directory, checksums, model={"hidden": [24]})),
                           tmp_path / "data", RunPaths(tmp_path / "challenger"))
    batch = images[:16] / 255.0
    expected = {p.sha256: np.array([a["probabilities"] for a in p.answers(batch)])
                for p in (Predictor.load(mnist_run.model), Predictor.load(challenger.model))}
    old, new = Predictor.load(mnist_run.model).sha256, Predictor.load(challenger.model).sha256

    answers: list[tuple[int, str, np.ndarray]] = []
    promoted = threading.Event()
    with Service(champion.champion_model, tmp_path) as service, httpx.Client(base_url=service.url) as http:
        def loop() -> None:
            for i in range(300):
                response = http.post("/predict", json={"pixels": batch.reshape(16, -1).tolist()})
                body = response.json()
                answers.append((response.status_code, body.get("model", {}).get("sha256"),
                                np.array([a["probabilities"] for a in body.get("predictions", [])])))
                if promoted.is_set() and len(answers) > 40 and answers[-1][1] == new:
                    break

        requests = threading.Thread(target=loop)
        requests.start()
        while len(answers) < 20:
            threading.Event().wait(0.01)
        registry.promote(challenger, champion, {"run_id": "new"})
        promoted.set()
        after = len(answers)
        requests.join(timeout=120)
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * len(answers)
    models = [sha for _, sha, _ in answers]
    assert set(models) == {old, new} and models[0] == old and models[-1] == new
    switch = models.index(new)
    assert models[switch:] == [new] * (len(models) - switch), "once switched, it stays switched"
    assert switch <= after + 1  # the request after the promotion already has the new model
    for _, sha, probabilities in answers:  # every answer is wholly one model's
        assert np.allclose(probabilities, expected[sha], atol=1e-6)


def test_a_blank_picture_is_answered_no_digit_not_a_label(client, images):
    from serving.answers import NO_DIGIT

    paper = np.full((120, 160), 235, np.uint8)
    answer = client.post("/predict", files=[("file", ("blank.png", png(paper), "image/png")),
                                            ("file", ("digit.png", png(images[0]), "image/png"))])
    assert answer.status_code == 200
    blank, digit = answer.json()["predictions"]
    assert blank == {**blank, "blank": True, "label": None, "class_index": None, "top": [], "reason": NO_DIGIT}
    assert digit["blank"] is False and digit["label"] is not None and len(digit["top"]) == 3
    zeros = client.post("/predict", json={"pixels": [0.0] * 784}).json()["predictions"][0]
    assert zeros["blank"] and zeros["label"] is None
