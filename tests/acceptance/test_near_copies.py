"""Test images saved as picture files do not get into training (issue 39, section 6).

A new user saved test digits as 84 px bilinear upscales and intake took them in:
preparation re-crops and re-scales the digit, and no hash survives that. The gate
now also compares each picture's whole frame with the test set (lifecycle/gate.py,
rule 4). Measured at scale by ``python -m bench.near_duplicates``; here, through
intake as a user runs it, on the real MNIST.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from lifecycle.intake import intake
from lifecycle.intake_sources import Limits, read_sources
from mnistflow.dataset_files import locate
from mnistflow.datasets import FILE_NAMES, class_labels
from mnistflow.download import download
from mnistflow.idx import read_idx
from mnistflow.params import validate
from tests.helpers import REPO

ENCODINGS = {
    "bilinear-3x": lambda im: _saved(Image.fromarray(im).resize((84, 84), Image.BILINEAR)),
    "bicubic-2x": lambda im: _saved(Image.fromarray(im).resize((56, 56), Image.BICUBIC)),
    "nearest-4x": lambda im: _saved(Image.fromarray(im).resize((112, 112), Image.NEAREST)),
    "bilinear-4x-jpeg": lambda im: _saved(Image.fromarray(im).resize((112, 112), Image.BILINEAR), "JPEG"),
    "jpeg": lambda im: _saved(Image.fromarray(im), "JPEG"),
    "bicubic-20-and-back": lambda im: _saved(Image.fromarray(im).resize((20, 20), Image.BICUBIC)
                                             .resize((28, 28), Image.BICUBIC)),
}


def _saved(picture: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"quality": 75} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _write(folder: Path, name: str, label: int, data: bytes) -> None:
    (folder / str(label)).mkdir(parents=True, exist_ok=True)
    (folder / str(label) / name).write_bytes(data)


def test_test_images_saved_as_pictures_are_refused_and_genuine_digits_are_not(real_mnist, tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["mirrors"] = [str(real_mnist)]
    params, data_root = validate(raw), tmp_path / "data"
    files = download(params.data, data_root)
    test, test_labels = read_idx(files.paths["test-images"], 3), read_idx(files.paths["test-labels"], 1)
    train = read_idx(real_mnist / FILE_NAMES["train-images"], 3)
    train_labels = read_idx(real_mnist / FILE_NAMES["train-labels"], 1)
    rng = np.random.default_rng(5)
    leaks, genuine = tmp_path / "leaks", tmp_path / "genuine"
    for n, i in enumerate(rng.choice(len(test), 48, replace=False)):
        name, encode = list(ENCODINGS.items())[n % len(ENCODINGS)]
        _write(leaks, f"test-{i}-{name}.{'jpg' if 'jpeg' in name else 'png'}", test_labels[i], encode(test[i]))
    for i in rng.choice(len(train), 200, replace=False):  # new digits, as far as the test set knows
        _write(genuine, f"train-{i}.png", train_labels[i], ENCODINGS["bilinear-3x"](train[i]))

    candidates = read_sources([leaks, genuine], class_labels("mnist"), (28, 28), Limits())
    report = intake("mnist", lambda: locate(params.data, data_root), data_root, candidates,
                    [str(leaks), str(genuine)], "2026-12-07T00:00:00.000+00:00")

    refused = {Path(r["origin"]).name: r["reason"] for r in report.refused}
    leaked = [path for path in leaks.rglob("test-*") if path.name not in refused]
    assert not leaked, f"test images taken into training: {[p.name for p in leaked]}"
    for name, reason in refused.items():
        if name.startswith("test-"):  # each names the test image it copies
            assert re.search(rf"test image {name.split('-')[1]}\b", reason), (name, reason)
    wrongly = [(name, reason) for name, reason in refused.items() if name.startswith("train-")]
    assert len(wrongly) <= 1, wrongly  # 0.5% of 200
    assert report.accepted == 200 - len(wrongly)
