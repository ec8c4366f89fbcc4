"""Draws docs/images/preparation.png: pictures before and after ``pictures.imaging.to_model_input``.

    MNISTFLOW_MIRROR=../shared/datasets/mnist .venv/bin/python docs/preparation.py
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from mnistflow.idx import read_idx  # noqa: E402
from serving.answers import blank  # noqa: E402
from pictures.imaging import to_model_input  # noqa: E402

HERE = Path(__file__).resolve().parent


def pictures() -> list[tuple[str, np.ndarray]]:
    digit = read_idx(Path(os.environ["MNISTFLOW_MIRROR"]) / "t10k-images-idx3-ubyte.gz", 3)[1]
    scan = np.full((240, 320), 235, dtype=np.uint8)  # grey paper, dark ink, small and off-centre
    scan[120:204, 200:284] = 235 - (np.asarray(Image.fromarray(digit).resize((84, 84))) * 0.8).astype(np.uint8)
    scan = np.clip(scan + np.random.default_rng(0).normal(0, 6, scan.shape), 0, 255).astype(np.uint8)
    canvas = Image.new("L", (280, 280), 0)  # the page's canvas: white strokes on black, drawn large
    pen = ImageDraw.Draw(canvas)
    pen.line([(60, 50), (200, 50), (110, 250)], fill=255, width=20, joint="curve")
    wide = Image.new("L", (400, 150), 255)  # a wide photo: black marker on white, a 4 at the left
    ImageDraw.Draw(wide).line([(60, 20), (30, 90), (110, 90)], fill=0, width=9)
    ImageDraw.Draw(wide).line([(90, 40), (90, 140)], fill=0, width=9)
    ys, xs = np.indices((240, 320))  # a phone photo: a lighting gradient across the paper
    lit = 250.0 - 0.35 * xs - 0.25 * ys
    big = np.asarray(Image.fromarray(digit).resize((120, 120), Image.Resampling.BILINEAR), dtype=np.float32)
    lit[60:180, 100:220] -= 0.7 * big * lit[60:180, 100:220] / 255
    lit = np.clip(lit + np.random.default_rng(1).normal(0, 4, lit.shape), 0, 255).astype(np.uint8)
    blank = np.clip(240 - 0.4 * xs + np.random.default_rng(2).normal(0, 4, xs.shape), 0, 255).astype(np.uint8)
    return [("scan, 320x240", scan), ("canvas, 280x280", np.asarray(canvas)), ("photo, 400x150", np.asarray(wide)),
            ("photo, uneven light", lit), ("blank page, in shadow", blank)]


def main() -> None:
    shown = pictures()
    figure, axes = plt.subplots(2, len(shown), figsize=(3 * len(shown), 5.6))
    for column, (name, picture) in enumerate(shown):
        axes[0, column].imshow(picture, cmap="gray", vmin=0, vmax=255)
        axes[0, column].set_title(f"before: {name}", fontsize=9)
        prepared = to_model_input(picture)
        axes[1, column].imshow(prepared, cmap="gray", vmin=0, vmax=1)
        axes[1, column].set_title("after: 28x28, light on dark,\n20x20 box, centred by mass" if not blank(prepared[None])[0]
                                  else "after: no ink left:\nflagged \"no digit\", no label", fontsize=9)
        for row in (0, 1):
            axes[row, column].set_xticks([])
            axes[row, column].set_yticks([])
    figure.tight_layout()
    figure.savefig(HERE / "images/preparation.png", dpi=80)


if __name__ == "__main__":
    main()
