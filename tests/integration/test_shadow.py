"""Shadow before promotion, with real parts: the retraining flow and the judge as a user runs
them, against a real Prefect server; a real uvicorn answering traffic with the champion
while the shadow answers beside it.

A challenger retrained with another seed agrees with the champion and is promoted on live
traffic. A challenger trained on labels shifted by one class (every 3 labelled 4, and so
on) passes its own test set, which is shifted too, but disagrees with the champion on
almost every live digit: it is discarded, and the champion keeps serving.
"""

from __future__ import annotations

import json
import sys

import httpx
import numpy as np
import pytest

from harness.real_parts import Service, wait_for
from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from tests.helpers import make_arrays, run, tiny_params, write_dataset, write_params

pytestmark = pytest.mark.slow


def retrain(work, env, *args: str) -> str:
    result = run([sys.executable, "-m", "flows.retrain", "--no-dvc-version", "--from-scratch", *args], work, env,
                 check=True)
    return result.stdout


def judge(work, env, service: Service) -> str:
    result = run([sys.executable, "-m", "flows.judge_shadow", "--service", service.url, "--min-images", "200"],
                 work, env, check=True)
    return result.stdout


def traffic(service: Service, pictures: np.ndarray) -> set[str]:
    """Every picture through /predict in batches of 50; the models that answered, by their header."""
    answered = set()
    for start in range(0, len(pictures), 50):
        response = httpx.post(f"{service.url}/predict", json={"pixels": pictures[start:start + 50].tolist()}, timeout=30)
        assert response.status_code == 200
        answered.add(response.headers["x-model-sha256"])
    return answered


def shadowed(service: Service, count: int) -> dict:
    return wait_for(lambda: (s := httpx.get(f"{service.url}/monitoring/shadow", timeout=10).json())["images"] >= count
                    and s, f"the shadow to answer {count} images")


def test_a_shadow_that_agrees_is_promoted_and_one_trained_on_shifted_labels_is_discarded(prefect_server, tmp_path):
    work, env = tmp_path, {**prefect_server.env}
    made = make_arrays(n_train=600, n_test=450)  # one set of class patterns: 200 test digits, 250 live ones
    arrays = {**made, "test-images": made["test-images"][:200], "test-labels": made["test-labels"][:200]}
    pictures = made["test-images"][200:].astype(np.float32) / 255
    checksums = write_dataset(work / "mirror", arrays)
    params = tiny_params(work / "mirror", checksums)
    write_params(work / "params.yaml", params)
    assert "promoted: no champion yet" in retrain(work, env)
    champions = RegistryPaths(work / "registry")

    with Service(None, work, env, ("--registry", "registry")) as service:
        first = registry.read_champion(champions)["model_sha256"]
        write_params(work / "params.yaml", {**params, "train": {**params["train"], "seed": 1}})
        said = retrain(work, env, "--promotion", "shadow", "--promotion-margin", "-1")
        assert "shadow: installed as the shadow" in said and champions.shadow_model.exists(), said
        assert traffic(service, pictures) == {first}  # the champion answers; the shadow only listens
        live = shadowed(service, 250)
        assert live["agreement"] >= 0.95, live
        verdict = judge(work, env, service)
        assert "the shadow is the champion, version 2" in verdict, verdict
        champion = registry.read_champion(champions)
        assert champion["version"] == 2 and champion["live"]["images"] >= 250 and "on the test set" in champion["reason"]
        assert not champions.shadow.exists() and traffic(service, pictures[:50]) == {champion["model_sha256"]}

        shifted = {**arrays, "train-labels": (arrays["train-labels"] + 1) % 10,
                   "test-labels": (arrays["test-labels"] + 1) % 10}
        checksums = write_dataset(work / "shifted", shifted)
        write_params(work / "params.yaml", tiny_params(work / "shifted", checksums))
        said = retrain(work, env, "--promotion", "shadow")  # it beats the champion on its own (shifted) test set
        assert "shadow: installed as the shadow" in said, said
        traffic(service, pictures)
        assert shadowed(service, 250)["agreement"] < 0.2
        verdict = judge(work, env, service)
        assert "the shadow is discarded: agreement" in verdict, verdict
        assert registry.read_champion(champions)["version"] == 2 and not champions.shadow.exists()

    history = [json.loads(line)["event"] for line in (champions.dir / "history.jsonl").read_text().splitlines()]
    assert history == ["promotion", "shadow installed", "promotion", "shadow installed", "shadow discarded"]
