"""What a shadow costs the user: ``python -m bench.shadow [--requests 400] [--rounds 3]``

Starts ``python -m serving.service`` (a real uvicorn) on a registry holding a
champion and a shadow of the same network (two untrained models: latency does
not depend on the weights), and times one PNG per request from one keep-alive
client, with the shadow answering every request (``--shadow-fraction 1``) and
with no shadowing (``--shadow-fraction 0``), in alternating rounds so the
machine's drift hits both. Prints each p50 and p99, and the ratio of the
medians of the p50s, for the default MLP and the cnn-fast preset's CNN.

Bar (issue 36): the p50 with a shadow within 10% of the p50 without (ratio <= 1.10).
Last, it reads /monitoring/shadow to show the shadow answered every request off
the request path. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.serve import REPO, model_file, png, test_images, timed
from lifecycle.install import install_files
from lifecycle.registry_paths import RegistryPaths
from mnistflow import atomic

BAR = 1.10


def registry_with_shadow(preset: Path, folder: Path) -> RegistryPaths:
    """A registry whose champion and shadow are two models of ``preset``'s network."""
    registry = RegistryPaths(folder / "registry")
    for number, link in ((1, "champion"), (2, "shadow")):
        (folder / link).mkdir()
        model = model_file(preset, folder / link, seed=number)  # two models: a shadow with the champion's bytes is never asked
        install_files(registry, number, {"model.pt": model}, {"model_sha256": atomic.sha256_of(model),
                                                              "version": number}, link=link)
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import httpx

    from harness.real_parts import Service, clean_env

    one_png = png(test_images()[0])
    print(f"{'model':10} {'shadow':8} {'p50 ms':>8} {'p99 ms':>8}")
    with tempfile.TemporaryDirectory() as scratch:
        for preset in (REPO / "params.yaml", REPO / "presets/cnn-fast.yaml"):
            name = "mlp" if preset.name == "params.yaml" else "cnn-fast"
            folder = Path(scratch) / name
            folder.mkdir()
            registry = registry_with_shadow(preset, folder)
            p50s: dict[str, list[float]] = {"on": [], "off": []}
            p99s: dict[str, list[float]] = {"on": [], "off": []}
            shadowed = 0
            for _ in range(args.rounds):
                for mode, fraction in (("on", "1"), ("off", "0")):
                    with Service(None, folder, clean_env(), ("--registry", str(registry.dir),
                                                             "--shadow-fraction", fraction)) as service, \
                            httpx.Client(base_url=service.url) as http:
                        times = timed(lambda: http.post("/predict", files={"file": ("d.png", one_png, "image/png")}),
                                      args.requests)
                        if mode == "on":
                            shadowed += http.get("/monitoring/shadow").json()["images"]
                    p50s[mode].append(statistics.median(times))
                    p99s[mode].append(float(np.percentile(times, 99)))
            for mode in ("on", "off"):
                print(f"{name:10} {mode:8} {statistics.median(p50s[mode]):8.2f} {statistics.median(p99s[mode]):8.2f}")
            ratio = statistics.median(p50s["on"]) / statistics.median(p50s["off"])
            sent = args.rounds * (args.requests + min(20, args.requests))
            print(f"{name:10} p50 with a shadow / without: {ratio:.3f} (bar: <= {BAR:.2f}: "
                  f"{'met' if ratio <= BAR else 'NOT met'}); the shadow answered {shadowed} of {sent} images")


if __name__ == "__main__":
    main()
