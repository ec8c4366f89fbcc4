"""Printed digits under uneven light, answered by a model (issue 38).

    python -m bench.lighting [--model outputs/model.pt]

Every digit 0-9 in three fonts (harness/lighting.py), under ramps of 0-120 grey
levels, linear and radial, clean and with a camera's grain (sigma 3), through
the same preparation and model the service uses. Prints the accuracy and how
many were answered "4" per case (the old failure), and, for comparison, the
same digits under flat light. Asserts nothing: docs/serving.md quotes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness.lighting import FONTS, KINDS, LEVELS, printed_digit
from mnistflow.inference import Predictor
from pictures.imaging import to_model_input


def answers(model: Predictor, levels: int, kind: str, noise: float) -> list[tuple[int, str | None]]:
    """(the digit, the model's label) for every digit in every font."""
    cases = [(digit, font) for font in FONTS for digit in range(10)]
    pictures = [printed_digit(d, levels, kind, noise, font, np.random.default_rng(i)) for i, (d, font) in enumerate(cases)]
    said = model.answers(np.stack([to_model_input(p, model.input_shape) for p in pictures]))
    return [(digit, a["label"]) for (digit, _), a in zip(cases, said)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lighting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("outputs/model.pt"))
    args = parser.parse_args()
    model = Predictor.load(args.model)
    print(f"{'light':8} {'levels':>6}  {'clean':>16}  {'grain (sigma 3)':>16}")
    for kind in KINDS:
        for levels in LEVELS:
            cells = []
            for noise in (0.0, 3.0):
                got = answers(model, levels, kind, noise)
                right = sum(label == str(digit) for digit, label in got)
                fours = sum(label == "4" for digit, label in got if digit != 4)
                cells.append(f"{right:2}/{len(got)} ({fours} '4')")
            print(f"{kind:8} {levels:>6}  {cells[0]:>16}  {cells[1]:>16}")


if __name__ == "__main__":
    main()
