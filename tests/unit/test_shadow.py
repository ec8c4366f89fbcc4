"""The shadow: installed beside the champion as one unit, answering off the request path,
judged on what it said, then promoted with both judgements or discarded. In this process,
on two tiny models trained on generated data."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pytest

from lifecycle import registry, shadow
from lifecycle.install import serving_folder
from lifecycle.registry_paths import RegistryPaths
from mnistflow.inference import Predictor
from mnistflow.paths import RunPaths
from serving import shadow as serving_shadow
from serving.model_file import ModelFiles
from serving.service import create_app
from tests.helpers import make_arrays


@pytest.fixture
def other(other_trained) -> RunPaths:
    return other_trained


@pytest.fixture
def champions(trained, tmp_path) -> RegistryPaths:
    paths = RegistryPaths(tmp_path / "registry")
    registry.promote(trained, paths, {"run_id": "champion", "time": registry.now()})
    return paths


def test_a_shadow_is_installed_as_one_unit_and_kept_through_champion_installs(champions, other, trained):
    record = shadow.install_shadow(other, champions, {"run_id": "challenger", "reason": "0.9 >= 0.8"})
    assert champions.shadow.is_symlink() and serving_folder(champions, "shadow").parent == champions.dir / "installed"
    assert shadow.read_shadow(champions)["model_sha256"] == record["model_sha256"] == Predictor.load(other.model).sha256
    folder = serving_folder(champions, "shadow")
    for n in range(3):  # champion installs tidy old folders, never the shadow's
        registry.promote(trained, champions, {"run_id": f"again-{n}", "time": registry.now()})
    assert serving_folder(champions, "shadow") == folder and (folder / "model.pt").exists()
    events = [e["event"] for e in registry.read_history(champions)]
    assert events == ["promotion", "shadow installed", "promotion", "promotion", "promotion"]


def test_the_judge_waits_promotes_or_discards_on_documented_thresholds():
    bar = shadow.Thresholds(min_images=100, min_agreement=0.95, max_confidence_drop=0.05)
    live = {"images": 99, "agreement": 1.0, "shadow_confidence": 0.9, "champion_confidence": 0.9}
    assert shadow.judge(live, bar)[0] == "wait"
    assert shadow.judge({**live, "images": 100}, bar)[0] == "promote"
    assert shadow.judge({**live, "images": 100, "agreement": 0.94}, bar)[0] == "discard"
    verdict, why = shadow.judge({**live, "images": 100, "shadow_confidence": 0.84}, bar)
    assert verdict == "discard" and "mean confidence 0.840 against the champion's 0.900" in why


def test_promoting_the_shadow_makes_it_the_next_version_with_both_judgements(champions, other):
    shadow.install_shadow(other, champions, {"run_id": "challenger", "reason": "test accuracy 0.91 >= 0.90"})
    live = {"images": 300, "agreement": 0.97, "reason": "agreement 97.00% over 300 images"}
    assert shadow.promote_shadow(champions, live) == 2
    champion = registry.read_champion(champions)
    assert champion["model_sha256"] == Predictor.load(other.model).sha256 and champion["live"] == live
    assert "on live traffic: agreement 97.00%" in champion["reason"] and "test accuracy 0.91" in champion["reason"]
    assert not champions.shadow.exists() and shadow.read_shadow(champions) is None
    assert registry.serving_at(champions, datetime.now(timezone.utc))["version"] == 2


def test_discarding_the_shadow_leaves_the_champion_and_says_why(champions, other):
    before = os.readlink(champions.champion)
    shadow.install_shadow(other, champions, {"run_id": "challenger"})
    shadow.discard_shadow(champions, {"reason": "agreement 12.00% over 300 images"})
    assert not champions.shadow.exists() and os.readlink(champions.champion) == before
    last = registry.read_history(champions)[-1]
    assert last["event"] == "shadow discarded" and last["run_id"] == "challenger" and "12.00%" in last["reason"]


def test_the_service_shadows_off_the_request_path_and_counts_what_it_saw(champions, trained, other):
    from fastapi.testclient import TestClient

    pictures = (make_arrays(n_train=1, n_test=40, seed=5)["test-images"].astype(np.float32) / 255)
    app = create_app(ModelFiles.of_champion(champions), shadow=champions.shadow_model)
    watched = app.state.service.shadow
    with TestClient(app) as client:
        assert client.get("/monitoring/shadow").json()["shadow_sha256"] is None
        shadow.install_shadow(other, champions, {"run_id": "challenger"})
        for start in range(0, 40, 10):
            assert client.post("/predict", json={"pixels": pictures[start:start + 10].tolist()}).status_code == 200
        assert watched.settled()
        seen = client.get("/monitoring/shadow").json()
        ours, theirs = (Predictor.load(m).probabilities(pictures).argmax(1) for m in (trained.model, other.model))
        assert seen["images"] == 40 and seen["agreement"] == pytest.approx(float(np.mean(ours == theirs)))
        assert seen["shadow_sha256"] == Predictor.load(other.model).sha256 and 0 < seen["shadow_confidence"] <= 1
        assert sum(seen["disagreements"].values()) == int((ours != theirs).sum())
        metrics = client.get("/metrics").text
        assert "mnistflow_shadow_images_total 40.0" in metrics

        # The request path never waits on the shadow: with its worker held, requests are answered,
        # and past the queue's bound they are dropped from the shadow, counted.
        with watched._lock:
            for _ in range(serving_shadow.QUEUE + serving_shadow.BATCH_IMAGES + 3):  # queued, and one batch taken
                assert client.post("/predict", json={"pixels": pictures[:1].tolist()}).status_code == 200
        assert watched.settled() and client.get("/monitoring/shadow").json()["dropped_requests"] >= 1
        shadow.discard_shadow(champions, {"reason": "done"})
        assert client.get("/monitoring/shadow").json()["shadow_sha256"] is None
    watched.close()
