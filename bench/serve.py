"""Serving latency over HTTP on 127.0.0.1: ``python -m bench.serve [--requests 500]``

Starts ``python -m serving.service`` (a real uvicorn process) on a model file
of the default MLP (params.yaml) and then of the cnn-fast preset's CNN, and
times, from one keep-alive client:

- ``GET /health``: the HTTP round trip alone, the baseline the others are
  divided by;
- one image per request, as JSON pixels and as a PNG upload (which the
  service prepares as MNIST's digits were);
- batches of 256 images, as JSON pixels and as 256 PNGs in one upload.

It prints p50 and p99 in milliseconds, p50 as a ratio to the round trip, and
the per-image cost of the batches, and says whether one image with the default
MLP meets the target (p50 <= 10 ms). Last, the cost of /metrics: one PNG with
the default MLP, the service started with and without ``--no-metrics``,
alternating rounds, as the ratio of their p50s (bar: <= 1.10). Latency does not depend on the weights,
so the models are untrained. Images are the real MNIST test images when
MNISTFLOW_MIRROR names them, else random strokes. Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 10.0
BATCH = 256


def model_file(preset: Path, folder: Path, seed: int = 0) -> Path:
    from mnistflow.checkpoints import save_model
    from mnistflow.params import load_params
    from mnistflow.train import architecture
    from models import build_model

    params = load_params(preset)
    arch = architecture(params.model, (28, 28))
    path = folder / f"{preset.stem}.pt"
    save_model(path, build_model(arch, seed), architecture=arch, input_scaling={"scale": 1 / 255, "mean": 0.0, "std": 1.0},
               dataset="mnist")
    return path


def test_images() -> np.ndarray:
    from mnistflow.idx import read_idx

    mirror = Path(os.environ.get("MNISTFLOW_MIRROR", ""))
    if (mirror / "t10k-images-idx3-ubyte.gz").exists():
        return read_idx(mirror / "t10k-images-idx3-ubyte.gz", 3)[:BATCH]
    rng = np.random.default_rng(0)
    images = np.zeros((BATCH, 28, 28), dtype=np.uint8)
    for image in images:  # a random bar of ink, somewhere near the middle
        r, c = rng.integers(6, 16, 2)
        image[r:r + 8, c:c + 3] = 255
    return images


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def timed(send, requests: int) -> list[float]:
    for _ in range(min(20, requests)):  # warm: connection, allocator, first-call paths
        send()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = send()
        times.append(1000 * (time.perf_counter() - started))
        if response.status_code != 200:
            sys.exit(f"request failed: {response.status_code} {response.text[:300]}")
    return times


def p99(times: list[float]) -> float:
    return float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="single-image requests per row")
    parser.add_argument("--batches", type=int, default=40, help="256-image requests per row")
    args = parser.parse_args()
    import httpx

    from harness.real_parts import Service, clean_env

    images = test_images()
    pixels = (images / 255.0).round(4)
    one_json = {"pixels": pixels[0].ravel().tolist()}
    batch_json = {"pixels": pixels.reshape(BATCH, -1).tolist()}
    one_png = png(images[0])
    batch_pngs = [("file", (f"{i}.png", png(image), "image/png")) for i, image in enumerate(images)]

    print(f"{'model':10} {'request':28} {'p50 ms':>8} {'p99 ms':>8} {'x health':>9} {'ms/image':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for preset in (REPO / "params.yaml", REPO / "presets/cnn-fast.yaml"):
            name = "mlp" if preset.name == "params.yaml" else "cnn-fast"
            with Service(model_file(preset, Path(scratch)), Path(scratch), clean_env()) as service, \
                    httpx.Client(base_url=service.url) as http:
                rows = [
                    ("GET /health (round trip)", 1, timed(lambda: http.get("/health"), args.requests)),
                    ("1 image, JSON pixels", 1, timed(lambda: http.post("/predict", json=one_json), args.requests)),
                    ("1 image, PNG upload", 1, timed(lambda: http.post(
                        "/predict", files={"file": ("d.png", one_png, "image/png")}), args.requests)),
                    (f"{BATCH} images, JSON pixels", BATCH, timed(lambda: http.post(
                        "/predict", json=batch_json), args.batches)),
                    (f"{BATCH} images, PNG upload", BATCH, timed(lambda: http.post(
                        "/predict", files=batch_pngs), args.batches)),
                ]
            health = statistics.median(rows[0][2])
            for label, count, times in rows:
                p50 = statistics.median(times)
                print(f"{name:10} {label:28} {p50:8.2f} {p99(times):8.2f} {p50 / health:9.2f} {p50 / count:9.3f}")
            if name == "mlp":
                single = max(statistics.median(rows[1][2]), statistics.median(rows[2][2]))
                verdict = "met" if single <= TARGET_MS else "NOT met"
                print(f"{'':10} target: one image, default MLP, p50 <= {TARGET_MS:.0f} ms: {verdict} ({single:.2f} ms)")
        metrics_cost(model_file(REPO / "params.yaml", Path(scratch)), Path(scratch), one_png, args.requests)


def metrics_cost(model: Path, scratch: Path, one_png: bytes, requests: int, rounds: int = 3) -> None:
    """p50 of one PNG with metrics on over off, in alternating rounds (the machine's drift hits both)."""
    import httpx

    from harness.real_parts import Service, clean_env

    p50s: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for on in (True, False):
            with Service(model, scratch, clean_env(), args=() if on else ("--no-metrics",)) as service, \
                    httpx.Client(base_url=service.url) as http:
                p50s[on].append(statistics.median(timed(lambda: http.post(
                    "/predict", files={"file": ("d.png", one_png, "image/png")}), requests)))
    on, off = statistics.median(p50s[True]), statistics.median(p50s[False])
    print(f"{'mlp':10} {'1 PNG, metrics on / off':28} {on:8.2f} {off:8.2f} {on / off:9.2f}   (bar: <= 1.10; "
          f"median of {rounds} alternating rounds)")


if __name__ == "__main__":
    main()
