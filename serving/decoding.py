"""The service's decoding budget, shared by every endpoint that takes pictures.

Pixels per request are counted from the pictures' headers before any is
decoded (``TooManyPixels`` past ``MAX_REQUEST_PIXELS``), and at most
``DECODERS`` requests decode at once; the others wait their turn (in the thread
pool). Memory and CPU for decoding stay bounded however many clients send
large pictures, to /predict and /feedback alike.
"""

from __future__ import annotations

import threading

import numpy as np

from pictures.imaging import decode_image, picture_pixels

# Decoded pixels per request: four 2048x2048 photos, or a thousand 128x128 crops. A digit needs a few thousand.
MAX_REQUEST_PIXELS = 2048 * 2048 * 4
DECODERS = 2
_decoding = threading.BoundedSemaphore(DECODERS)


class TooManyPixels(Exception):
    def __init__(self, total: int) -> None:
        super().__init__(f"pictures of {total:,} pixels in all; a request may carry at most "
                         f"{MAX_REQUEST_PIXELS:,} (a digit needs a few thousand)")


def decode_within_budget(images: list[tuple[str, bytes]]) -> list[np.ndarray]:
    """Each picture's greyscale pixels; ``TooManyPixels`` or ``ImageError`` before any is decoded."""
    total = sum(picture_pixels(data, name) for name, data in images)
    if total > MAX_REQUEST_PIXELS:
        raise TooManyPixels(total)
    with _decoding:
        return [decode_image(data, name) for name, data in images]
