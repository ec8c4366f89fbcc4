"""Printed digits under a lighting ramp of 0-120 grey levels, linear and radial, clean
and grainy (harness/lighting.py): the preparation gives the digit MNIST's 20-pixel box,
as it does under flat light, and nearly the same pixels. Before issue 38, a clean
picture under a ramp of 60 levels or more came out as a 6-pixel digit inside a frame
of lighting residue, and every one was answered "4"."""

from __future__ import annotations

import numpy as np
import pytest

from harness.lighting import KINDS, LEVELS, printed_digit
from pictures.imaging import to_model_input


def _height(prepared: np.ndarray) -> int:
    rows = np.nonzero(prepared.max(axis=1) > 0)[0]
    return int(rows.max() - rows.min() + 1) if len(rows) else 0


@pytest.mark.parametrize("noise", [0.0, 3.0])
@pytest.mark.parametrize("kind", KINDS)
def test_a_printed_digit_under_a_lighting_ramp_is_prepared_as_under_flat_light(kind, noise):
    for levels in LEVELS[1:]:
        similarity = []
        for digit in range(10):
            flat = to_model_input(printed_digit(digit, 0, kind, noise, rng=np.random.default_rng(digit)))
            lit = to_model_input(printed_digit(digit, levels, kind, noise, rng=np.random.default_rng(digit)))
            assert _height(lit) == _height(flat) == 20, (digit, levels)  # MNIST's box, not a speck in a frame
            similarity.append(np.corrcoef(lit.ravel(), flat.ravel())[0, 1])
        # Dimmer light leaves some strokes fainter after the stretch (a "0" the most): the
        # same digit, not the same pixels.
        assert np.mean(similarity) > 0.9 and min(similarity) > 0.65, (levels, similarity)
