"""Printed digits photographed under uneven light: the cases the picture preparation
must survive (issue 38), shared by its tests and ``bench.lighting``.

A digit is printed (DejaVu Sans, the font matplotlib ships, so every machine with
the project has it) dark on white paper, lit by a ramp that dims the paper by up
to ``levels`` grey levels: across the frame from left to right ("linear"), or
away from a lamp near the top-left corner ("radial"). The light falls on the ink
too (it is a photo of paper), and ``noise`` adds a camera's grain; 0 is a clean,
computer-made picture, the case that used to come out as a 6-pixel "4".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LEVELS = (0, 30, 60, 90, 120)
KINDS = ("linear", "radial")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf")
FRAME = (240, 320)  # rows, columns: a small phone photo


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def light(levels: float, kind: str, frame: tuple[int, int] = FRAME) -> np.ndarray:
    """How much darker than the brightest spot each pixel's paper is."""
    rows, cols = np.indices(frame, dtype=np.float64)
    if kind == "linear":
        return levels * cols / (frame[1] - 1)
    distance = np.hypot(rows - 0.2 * frame[0], cols - 0.2 * frame[1])
    return levels * distance / distance.max()


def printed_digit(digit: int, levels: float, kind: str, noise: float = 0.0, font: str = FONTS[0],
                  rng: np.random.Generator | None = None, frame: tuple[int, int] = FRAME) -> np.ndarray:
    """The photo (uint8, ``frame``): ``digit`` printed 140 px tall, dark on paper of 240 at its brightest."""
    ink = Image.new("L", (frame[1], frame[0]), 0)
    ImageDraw.Draw(ink).text((frame[1] // 2, frame[0] // 2), str(digit), fill=255, anchor="mm", font=_font(font, 140))
    paper = 240.0 - light(levels, kind, frame)
    photo = paper * (1 - 0.8 * np.asarray(ink, np.float64) / 255)  # the ink reflects a fifth of the light
    if noise:
        photo += (rng or np.random.default_rng(0)).normal(0, noise, frame)
    return np.clip(photo, 0, 255).round().astype(np.uint8)
