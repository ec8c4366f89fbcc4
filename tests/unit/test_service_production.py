"""The service in production: readiness, Prometheus metrics (scraped by a real
Prometheus), and corrections into the feedback inbox.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_service_production.py.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from lifecycle import registry
from lifecycle.intake_sources import Limits, read_sources
from lifecycle.registry_paths import RegistryPaths
from mnistflow import atomic
from serving.inbox import Inbox, InboxLimits
from serving.model_file import ModelFiles
from serving.service import create_app
from tests.helpers import digit, png


def samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def client_for(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def test_metrics_count_what_the_requests_did(trained):
    with client_for(create_app(trained.model)) as client:
        for _ in range(2):
            assert client.post("/predict", content=png(digit()), headers={"content-type": "image/png"}).status_code == 200
        assert client.post("/predict", content=png(np.zeros((28, 28), np.uint8)),
                           headers={"content-type": "image/png"}).json()["predictions"][0]["blank"]
        assert client.post("/predict", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        assert client.get("/no/such/page").status_code == 404
        text = client.get("/metrics").text
    got = samples(text)
    assert got[("mnistflow_http_requests_total", (("route", "/predict"), ("status", "200")))] == 3
    assert got[("mnistflow_http_requests_total", (("route", "/predict"), ("status", "415")))] == 1
    assert got[("mnistflow_http_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert got[("mnistflow_http_request_duration_seconds_count", (("route", "/predict"),))] == 4
    assert got[("mnistflow_images_predicted_total", ())] == 3
    assert got[("mnistflow_predictions_total", (("label", "blank"),))] == 1
    by_class = sum(v for (name, labels), v in got.items() if name == "mnistflow_predictions_total"
                   and labels != (("label", "blank"),))
    assert by_class == 2 and got[("mnistflow_prediction_confidence_count", ())] == 2
    sha = atomic.sha256_of(trained.model)
    assert got[("mnistflow_model_info", (("path", trained.model.name), ("sha256", sha)))] == 1  # never an absolute path
    assert got[("mnistflow_ready", ())] == 1


def test_unready_without_a_model_then_ready_when_a_champion_appears(trained, tmp_path):
    reg = RegistryPaths(tmp_path / "registry")
    with client_for(create_app(ModelFiles.of_champion(reg))) as client:
        assert client.get("/health").json() == {"status": "ok", "model": None}
        unready = client.get("/ready")
        assert unready.status_code == 503 and unready.json()["reason"].startswith("no model loaded yet: waiting for")
        assert client.post("/predict", content=png(digit()), headers={"content-type": "image/png"}).status_code == 503
        registry.promote(trained, reg, {"run_id": "r1", "time": registry.now()})
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["model"]["sha256"] == atomic.sha256_of(reg.champion_model)
        assert client.post("/predict", content=png(digit()), headers={"content-type": "image/png"}).status_code == 200
        # A damaged file replaces the champion: the loaded model keeps answering, /ready says why not ready.
        atomic.write_bytes(reg.champion_model, b"not a model")
        assert client.post("/predict", content=png(digit()), headers={"content-type": "image/png"}).status_code == 200
        damaged = client.get("/ready")
        assert damaged.status_code == 503 and "is not the loaded model's" in damaged.json()["reason"]
        got = samples(client.get("/metrics").text)
    assert got[("mnistflow_model_reload_failures_total", ())] == 1 and got[("mnistflow_model_reloads_total", ())] == 0


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, "PNG")  # 25 megapixels in about 25 KB
    return buffer.getvalue()


@pytest.mark.parametrize("body,status,message", [
    ({"image": data_url(b"not a png"), "label": "3", "model_sha256": "0" * 64}, 422, "image: not an image"),
    ({"image": "%%%", "label": "3", "model_sha256": "0" * 64}, 422, "image: not valid base64"),
    ({"image": data_url(bomb()), "label": "3", "model_sha256": "0" * 64}, 422, "image: 5000x5000 pixels is more"),
    ({"label": "3", "model_sha256": "0" * 64}, 422, "image: required"),
    ({"image": data_url(png(digit())), "label": "12", "model_sha256": "0" * 64}, 422, "label: '12' is not one of"),
    ({"image": data_url(png(digit())), "label": "3"}, 422, "model_sha256: required"),
])
def test_bad_feedback_gets_a_4xx_that_says_why(trained, tmp_path, body, status, message):
    with client_for(create_app(trained.model, inbox=Inbox(tmp_path / "inbox"))) as client:
        response = client.post("/feedback", json=body)
        assert response.status_code == status and response.json()["detail"].startswith(message)
        assert samples(client.get("/metrics").text)[("mnistflow_feedback_refused_total", (("status", str(status)),))] == 1
    assert not (tmp_path / "inbox").exists() or not list((tmp_path / "inbox").iterdir())


def test_feedback_lands_in_the_inbox_within_its_bounds_and_intake_reads_it(trained, tmp_path):
    limits = InboxLimits(items=3, per_client_per_minute=100, item_bytes=4096)
    sha = atomic.sha256_of(trained.model)
    picture = png(digit())
    with client_for(create_app(trained.model, inbox=Inbox(tmp_path / "inbox", limits))) as client:
        first = client.post("/feedback", json={"image": data_url(picture), "label": "1", "model_sha256": sha,
                                                "predicted": "7"})
        assert first.status_code == 201 and first.json()["model_known"] is True
        stranger = client.post("/feedback", json={"image": data_url(picture), "label": "1", "model_sha256": "f" * 64})
        assert stranger.status_code == 201 and stranger.json()["model_known"] is False  # kept, and flagged
        client.post("/feedback", json={"image": data_url(picture), "label": "4", "model_sha256": sha})
        full = client.post("/feedback", json={"image": data_url(picture), "label": "5", "model_sha256": sha})
        assert full.status_code == 507 and "inbox is full" in full.json()["detail"]
        big = client.post("/feedback", json={"image": data_url(png(np.random.default_rng(0).integers(
            0, 255, (200, 200), dtype=np.uint8))), "label": "5", "model_sha256": sha})
        assert big.status_code == 413
        assert client.post("/predict", content=picture, headers={"content-type": "image/png"}).status_code == 200
    inbox = tmp_path / "inbox"
    assert len(list(inbox.glob("*.png"))) == len(list(inbox.glob("*.json"))) == 3
    assert (inbox / f"{first.json()['id']}.png").read_bytes() == picture
    candidates = read_sources([], [str(d) for d in range(10)], (28, 28), Limits(), inbox=inbox)
    assert sorted(c.label for c in candidates) == [1, 1, 4] and all(c.refused is None for c in candidates)


def test_corrections_from_one_client_are_rate_limited(trained, tmp_path):
    inbox = Inbox(tmp_path / "inbox", InboxLimits(per_client_per_minute=2))
    body = {"image": data_url(png(digit())), "label": "1", "model_sha256": "0" * 64}
    with client_for(create_app(trained.model, inbox=inbox)) as client:
        assert [client.post("/feedback", json=body).status_code for _ in range(3)] == [201, 201, 429]
        assert "corrections a minute" in client.post("/feedback", json=body).json()["detail"]


@pytest.mark.parametrize("flag, value", [("--header-seconds", "0"), ("--body-seconds", "-1"), ("--body-seconds", "nan")])
def test_a_deadline_that_is_no_deadline_is_one_line_naming_its_flag(flag, value, capsys):
    """Refused before the model loads or the port is bound."""
    from serving.service import main

    with pytest.raises(SystemExit) as exit_:
        main(["--model", "no-such.pt", flag, value])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mnistflow: error: {flag} {float(value)}: a deadline is more than 0")


def test_the_listening_socket_says_tcp_so_answers_are_not_held_back():
    """asyncio sets TCP_NODELAY on an accepted socket only when its proto is IPPROTO_TCP, and
    an accepted socket takes the listener's: with proto 0, each answer on a kept-alive
    connection waited 40 ms for the client's delayed ACK (bench.serve: 44 ms against 1 ms)."""
    import socket

    from serving.service import bound_socket

    listening = bound_socket("127.0.0.1", 0)
    try:
        listening.listen()
        client = socket.create_connection(listening.getsockname())
        accepted, _ = listening.accept()
        assert listening.proto == accepted.proto == socket.IPPROTO_TCP
        client.close()
        accepted.close()
    finally:
        listening.close()
