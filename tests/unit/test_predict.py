"""Preparing pictures as MNIST's digits were, and the predict CLI, against the model in PyTorch.

The model is the default recipe trained on the real MNIST (the ``mnist_run`` fixture);
the pictures are made from its test images.

Here: the cases that run in this process and start nothing; the others are in tests/acceptance/test_predict.py.
"""

from __future__ import annotations

import pytest
from PIL import Image

from pictures.imaging import ImageError, decode_image

def test_a_decompression_bomb_is_refused_before_decoding():
    import io

    bomb = io.BytesIO()
    Image.new("L", (5000, 5000)).save(bomb, "PNG")  # 25 megapixels in about 25 KB
    with pytest.raises(ImageError, match=r"bomb.png: 5000x5000 pixels is more than"):
        decode_image(bomb.getvalue(), "bomb.png")
