"""What a model sees and says, summarised for drift checks: the same numbers from the
validation set at evaluation time (``profile.json``, beside ``metrics.json``) and
from the service's recent requests (serving/service.py's window).

Per image: the predicted class, the top-1 probability, the mean pixel intensity,
and the height and width of the ink's bounding box (pixels above INK), all on
the prepared [0, 1] pixels the network takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INK = 0.1
SAMPLE = 2000  # values per statistic kept in profile.json: plenty for a two-sample test
SUMMARIES = ("confidence", "mean_intensity", "ink_height", "ink_width")


def image_summaries(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Mean intensity and the ink's bounding-box height and width, per image (N x H x W in [0, 1])."""
    pixels = np.asarray(pixels, dtype=np.float32)
    ink = pixels > INK
    rows, cols = ink.any(axis=2), ink.any(axis=1)

    def extent(mask: np.ndarray) -> np.ndarray:
        first = mask.argmax(axis=1)
        last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
        return np.where(mask.any(axis=1), last - first + 1, 0).astype(np.float32)

    return {"mean_intensity": pixels.mean(axis=(1, 2)), "ink_height": extent(rows), "ink_width": extent(cols)}


def profile(pixels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The profile of a set of images and the model's probabilities for them."""
    predicted = probabilities.argmax(axis=1)
    values = {"confidence": probabilities.max(axis=1), **image_summaries(pixels)}
    # A seeded random sample, not the first SAMPLE images: a set's first images can come from
    # a few writers (MNIST's do), and a baseline of them alarmed on genuine digits (issue 39).
    keep = np.sort(np.random.default_rng(0).choice(len(predicted), min(len(predicted), SAMPLE), replace=False))
    return {"size": int(len(predicted)), "classes": classes,
            "class_counts": np.bincount(predicted, minlength=len(classes)).tolist(),
            "samples": {name: [round(float(v), 4) for v in values[name][keep]] for name in SUMMARIES}}
