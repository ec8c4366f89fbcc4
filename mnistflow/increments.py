"""Increments: labelled images added to a dataset after its download, as the pipeline reads them.

An increment is one immutable folder, ``<data-root>/<dataset>/increments/<id>/``,
written whole by intake (``lifecycle/intake.py``; ``python -m flows.intake``):

- ``images-idx3-ubyte`` and ``labels-idx1-ubyte``: the accepted items, already
  prepared as the dataset's images are (uint8, the dataset's shape);
- ``manifest.json``: where each item came from, its content hash, and the md5 of
  both IDX files.

Ids sort by time, so every reader takes the increments in the order they
arrived. A folder whose name starts with a dot is an intake still writing (or one
killed mid-write): nobody reads it. Because the increments live inside the
dataset's folder, DVC versions, pushes and pulls them with it, and `dvc repro`
reruns the split and training when one arrives.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MnistflowError
from .idx import read_idx

INCREMENTS = "increments"
IMAGES = "images-idx3-ubyte"
LABELS = "labels-idx1-ubyte"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Increment:
    id: str
    directory: str
    images_md5: str
    labels_md5: str
    item_sha256: tuple[str, ...]  # per item, of its prepared pixels: the split and the gate key on it
    time: str = ""


def increments_dir(dataset_directory: str | Path) -> Path:
    return Path(dataset_directory) / INCREMENTS


def item_sha256(pixels: np.ndarray) -> str:
    """The content hash of one prepared image (its uint8 pixels, row by row)."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def in_validation(sha256: str, val_fraction: float) -> bool:
    """Whether an added item is held out for validation: a pure function of its
    content hash, so adding data never moves an earlier item to the other side."""
    return int(sha256[:16], 16) < val_fraction * 2**64


def _md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def read_increment(directory: Path) -> Increment:
    """One increment, its files checked against its manifest (a damaged one is refused)."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        items = tuple(item["sha256"] for item in manifest["items"])
        images_md5, labels_md5 = manifest["files"][IMAGES], manifest["files"][LABELS]
    except FileNotFoundError:
        raise MnistflowError(f"{path}: missing; {directory} is not a whole increment") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise MnistflowError(f"{path}: not an increment manifest ({exc})") from None
    for name, expected in ((IMAGES, images_md5), (LABELS, labels_md5)):
        file = directory / name
        if not file.exists() or _md5(file) != expected:
            raise MnistflowError(f"{file}: missing or changed since intake wrote it (md5 is not {expected}); "
                                 "restore it (dvc checkout) or remove the increment")
    return Increment(directory.name, str(directory), images_md5, labels_md5, items, manifest.get("time", ""))


def list_increments(dataset_directory: str | Path) -> tuple[Increment, ...]:
    """Every whole increment of a dataset, oldest first."""
    root = increments_dir(dataset_directory)
    if not root.is_dir():
        return ()
    return tuple(read_increment(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith("."))


def load_increment(increment: Increment, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Its images and labels, checked against each other and the dataset's image shape."""
    directory = Path(increment.directory)
    images, labels = read_idx(directory / IMAGES, 3), read_idx(directory / LABELS, 1)
    if len(images) != len(labels) or len(images) != len(increment.item_sha256):
        raise MnistflowError(f"{directory}: {len(images)} images, {len(labels)} labels and "
                             f"{len(increment.item_sha256)} manifest items; they must be equal")
    if tuple(images.shape[1:]) != tuple(shape):
        raise MnistflowError(f"{directory / IMAGES}: images are {images.shape[1]}x{images.shape[2]}, "
                             f"the dataset's are {shape[0]}x{shape[1]}")
    return images, labels


def combined_digest(base_digest: str, increments: tuple[Increment, ...]) -> str:
    """The dataset digest over the base files and every increment; the base digest
    alone when there are none, so every run made before increments existed stands."""
    if not increments:
        return base_digest
    lines = [base_digest] + [f"{inc.id}:{inc.images_md5}:{inc.labels_md5}" for inc in increments]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
