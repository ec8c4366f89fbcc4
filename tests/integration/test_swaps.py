"""Swaps drop nothing: clients keep a real uvicorn busy while the champion is promoted and
rolled back ten times. Every answer is a 200, names the model that gave it, and holds that
model's answers for the whole batch: no request fails in a swap and no batch mixes two
models. The test prints the latency near the swaps against the steady latency; the bar on
it (p99 at most 2x) is bench/swaps.py's, since tests never assert on time."""

from __future__ import annotations

import numpy as np
import pytest

from harness.real_parts import Service
from harness.load import latency, swapping, under_load
from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from mnistflow.inference import Predictor
from tests.helpers import make_arrays

# The load saturates both cores for seconds: the page's timed waits never run beside it.
pytestmark = [pytest.mark.xdist_group("saturates-cpu"), pytest.mark.slow]

CLIENTS, SECONDS, SWAPS = 20, 14.0, 10


def test_ten_swaps_under_load_drop_nothing_and_mix_no_batch(trained, other_trained, tmp_path):
    champions = RegistryPaths(tmp_path / "registry")
    registry.promote(trained, champions, {"run_id": "first", "time": registry.now()})
    pixels = make_arrays(n_train=1, n_test=8, seed=2)["test-images"].astype(np.float32) / 255
    expected = {p.sha256: p.probabilities(pixels) for p in map(Predictor.load, (trained.model, other_trained.model))}

    def swap(n: int) -> None:  # promote the other model, then put version 1 back, in turn
        if n % 2 == 0:
            registry.promote(other_trained, champions, {"run_id": f"swap-{n}", "time": registry.now()})
        else:
            registry.rollback(champions, 1, "the swap test", {"flow_run_name": "test"})

    with Service(None, tmp_path, args=("--registry", str(champions.dir))) as service:
        answers, swaps = under_load(service.url, pixels, CLIENTS, SECONDS, swapping(swap, SWAPS, 1.0, 2.0))
    figures = latency(answers, swaps)
    print(f"\n{figures['requests']} batches of 8 from {CLIENTS} clients in {SECONDS:.0f} s, {len(swaps)} swaps: "
          f"p99 {figures['steady_p99_ms']:.0f} ms steady, {figures['swap_p99_ms']:.0f} ms within 1 s of a swap "
          f"({figures['p99_ratio']:.2f}x); p50 {figures['steady_p50_ms']:.0f} / {figures['swap_p50_ms']:.0f} ms")
    assert len(swaps) == SWAPS and figures["near_swaps"] > 0
    assert [a.status for a in answers if a.status != 200] == []
    assert {a.model for a in answers} == set(expected)  # both models served, and every answer says which
    for answer in answers:
        assert answer.said == answer.model
        assert np.allclose(answer.probabilities, expected[answer.model], atol=1e-5), "a batch mixed two models"
