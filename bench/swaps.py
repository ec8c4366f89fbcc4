"""Promotions and rollbacks under load: ``python -m bench.swaps [--clients 50] [--seconds 60] [--swaps 10]``

Starts the service (a real uvicorn) on a registry whose champion is the default
MLP, and keeps ``--clients`` clients sending batches of 8 images for
``--seconds`` while the champion is swapped ``--swaps`` times (a promotion of
another model, then a rollback to version 1, in turn; lifecycle.registry, the
code the flows call). Reports every non-2xx answer, the answers whose batch does
not match the model their X-Model-SHA256 header names, and the p99 latency of
requests within a second of a swap against the steady p99.

Bar (issue 36): no non-2xx, no mixed batch, and p99 near a swap at most 2x the
steady p99. The models are untrained (latency does not depend on the weights).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.serve import REPO, model_file, test_images
from harness.load import latency, swapping, under_load
from lifecycle import registry
from lifecycle.install import install_files
from lifecycle.registry_paths import RegistryPaths
from mnistflow import atomic
from mnistflow.inference import Predictor

BAR = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--swaps", type=int, default=10)
    args = parser.parse_args()
    from harness.real_parts import Service, clean_env

    pixels = test_images()[:8].astype(np.float32) / 255
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        models = [model_file(REPO / "params.yaml", folder / str(seed), seed) for seed in (1, 2)
                  if (folder / str(seed)).mkdir() is None]
        champions = RegistryPaths(folder / "registry")
        for number, model in enumerate(models, 1):  # two versions to swap between
            install_files(champions, number, {"model.pt": model}, {"model_sha256": atomic.sha256_of(model),
                                                                   "version": number})
            versions = champions.dir / "versions" / str(number)
            versions.mkdir(parents=True)
            (versions / "model.pt").write_bytes(model.read_bytes())
            atomic.write_json(versions / "record.json", {"model_sha256": atomic.sha256_of(model), "version": number})
        expected = {p.sha256: p.probabilities(pixels) for p in map(Predictor.load, models)}

        def swap(n: int) -> None:
            registry.rollback(champions, 2 if n % 2 else 1, "bench.swaps", {"flow_run_name": "bench"})  # 2 serves first

        every = args.seconds / (args.swaps + 1)
        with Service(None, folder, clean_env(), ("--registry", str(champions.dir))) as service:
            answers, swaps = under_load(service.url, pixels, args.clients, args.seconds,
                                        swapping(swap, args.swaps, every, every / 2))
    figures = latency(answers, swaps)
    failed = sum(a.status != 200 for a in answers)
    mixed = sum(a.status == 200 and not np.allclose(a.probabilities, expected.get(a.model, -1), atol=1e-5)
                for a in answers)
    print(f"{figures['requests']} requests from {args.clients} clients in {args.seconds:.0f} s, {len(swaps)} swaps "
          f"({figures['near_swaps']} requests within 1 s of one)")
    print(f"non-2xx: {failed}; batches not the named model's: {mixed}")
    for answer in [a for a in answers if a.status != 200][:5]:
        near = min((abs(answer.sent - t) for t in swaps), default=float("nan"))
        print(f"  status {answer.status} after {answer.seconds:.2f} s, {near:.2f} s from a swap: {answer.said}")
    print(f"p50 ms: steady {figures['steady_p50_ms']:.1f}, near a swap {figures['swap_p50_ms']:.1f}")
    print(f"p99 ms: steady {figures['steady_p99_ms']:.1f}, near a swap {figures['swap_p99_ms']:.1f}: "
          f"{figures['p99_ratio']:.2f}x (bar: <= {BAR:.0f}x: "
          f"{'met' if figures['p99_ratio'] <= BAR and not failed and not mixed else 'NOT met'})")


if __name__ == "__main__":
    main()
