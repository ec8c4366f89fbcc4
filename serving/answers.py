"""The answers the service and the predict CLI give: the model's, except for an empty picture.

A picture with no ink left after preparation (blank, erased, or ink too faint to
tell from the paper) holds no digit, and the network's answer for it (often a
confident one) would be as meaningless as the input: it is flagged instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnistflow.inference import Predictor

# Total ink (the sum of the [0, 1] pixels) under which a prepared picture holds no
# digit: a handful of full-strength pixels. MNIST's digits hold 100 and more.
MIN_INK = 2.0
NO_DIGIT = "no digit: nothing is left after preparation (a blank or erased picture, or ink too faint)"


def blank(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1).sum(axis=1) < MIN_INK


def answers(predictor: Predictor, pixels: np.ndarray, probabilities: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per image: the label and the top 3, or ``blank: true`` with no label for an empty one
    (``probabilities``: the model's for ``pixels``, when the caller has them already)."""
    if probabilities is None:
        probabilities = predictor.probabilities(pixels)
    results = [predictor.answer(p) for p in probabilities]
    for result, empty in zip(results, blank(pixels)):
        result["blank"] = bool(empty)
        if empty:
            result.update(label=None, class_index=None, top=[], reason=NO_DIGIT)
    return results
