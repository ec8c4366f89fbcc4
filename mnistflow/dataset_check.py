"""The four files against each other: counts, image shapes and labels agree, or one line says which do not.

Each file's own header is checked as it downloads (``mnistflow.fetch``); this
is the check across files, made once all four are verified and before the
manifest (and so ``split.json``) exists. A custom dataset whose labels run
short of its images, whose test images are another size, or whose labels
name a class the network has no output for is refused here in one line, not
after a training run in a torch traceback. Only the headers and the label
bytes are read (70 KB for MNIST), never the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MnistflowError
from .idx import header_size, parse_header, read_idx

# The network has one output per class (models.mlp, models.cnn).
CLASSES = 10


@dataclass(frozen=True)
class DatasetShape:
    """What the headers of a consistent dataset say."""

    train_size: int
    test_size: int
    image_shape: tuple[int, int]  # (height, width)

    @property
    def images(self) -> int:
        return self.train_size + self.test_size


def _header(path: Path, ndim: int) -> list[int]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(header_size(ndim))
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    dims, size = parse_header(path, raw, ndim)
    actual = path.stat().st_size
    if actual != size:
        raise MnistflowError(f"{path}: wrong length {actual} bytes (header {dims} says {size})")
    return dims


def _labels_in_range(path: Path) -> None:
    labels = read_idx(path, 1)
    if len(labels) and int(labels.max()) >= CLASSES:
        bad = np.flatnonzero(labels >= CLASSES)
        raise MnistflowError(f"{path}: label {int(labels[bad[0]])} at item {int(bad[0])} ({len(bad)} such); "
                             f"labels must be 0 to {CLASSES - 1}, one per output of the network")


def check_dataset(paths: dict[str, str | Path]) -> DatasetShape:
    """The dataset's sizes and image shape, once its four files agree; else one line naming the file."""
    sizes, shapes = {}, {}
    for part in ("train", "test"):
        images, labels = Path(paths[f"{part}-images"]), Path(paths[f"{part}-labels"])
        n, height, width = _header(images, 3)
        (n_labels,) = _header(labels, 1)
        if n == 0:
            raise MnistflowError(f"{images}: holds 0 images; the {part} set needs at least one")
        if height == 0 or width == 0:
            raise MnistflowError(f"{images}: its images are {height}x{width}; an image needs at least one pixel")
        if n != n_labels:
            raise MnistflowError(f"{labels}: {n_labels:,} labels for the {n:,} images of {images.name}; "
                                 "each image needs exactly one label")
        _labels_in_range(labels)
        sizes[part], shapes[part] = n, (height, width)
    if shapes["test"] != shapes["train"]:
        (th, tw), (h, w) = shapes["test"], shapes["train"]
        raise MnistflowError(f"{paths['test-images']}: its images are {th}x{tw}, the training images "
                             f"({Path(paths['train-images']).name}) {h}x{w}; both sets need one size")
    return DatasetShape(sizes["train"], sizes["test"], shapes["train"])
