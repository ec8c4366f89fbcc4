"""The intake gate: which candidates may join the dataset, and why the others may not.

Rules, per item, in order (the first that fails is its reason):

1. it was read: it decodes, its label is one of the dataset's classes, its
   size and shape fit (``lifecycle.intake_sources``);
2. it is not an exact copy, after preparation, of any training, validation,
   test or earlier-increment image, nor of an earlier item of the same batch;
3. it is not a near-copy of a test image: its perceptual hash (imagehash's
   pHash, 16x16 = 256 bits) lies within ``NEAR_DUPLICATE_BITS`` of a test
   image's. A test image that leaks into training makes every later judge of
   champion against challenger unfair.

The threshold, measured on MNIST (bench/near_duplicates.py prints it again): at
16 bits every test image re-encoded, resampled or dimmed by 20% is caught, and
about half of those with heavy noise (sigma 20 grey levels); 0.1% of MNIST's own
training images lie that close to some test image and would be refused.
(At pHash's default 8x8 = 64 bits, 4 bits already refuses 39% of them: at 28x28
a digit's low frequencies are mostly its class.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from mnistflow.download import DatasetFiles
from mnistflow.idx import read_idx
from mnistflow.increments import item_sha256

HASH_SIZE = 16
NEAR_DUPLICATE_BITS = 16


def perceptual_hash(pixels: np.ndarray) -> np.ndarray:
    """imagehash's pHash of one uint8 image, as HASH_SIZE**2 bits."""
    import imagehash
    from PIL import Image

    return imagehash.phash(Image.fromarray(np.asarray(pixels, dtype=np.uint8)), hash_size=HASH_SIZE).hash.ravel()


def _hashes(images: np.ndarray) -> dict[str, int]:
    # The same hash as the increments' item hash: raw row-major uint8 bytes.
    return {hashlib.sha256(image.tobytes()).hexdigest(): i for i, image in enumerate(images)}


@dataclass
class Gate:
    """What a dataset already holds, indexed for the rules above."""

    known: dict[str, str]           # content hash -> where that image already is
    test_hashes: np.ndarray          # (n_test, HASH_SIZE**2) bool
    threshold: int = NEAR_DUPLICATE_BITS
    seen: dict[str, str] = field(default_factory=dict)  # this batch's accepted items

    @classmethod
    def of(cls, files: DatasetFiles, threshold: int = NEAR_DUPLICATE_BITS) -> "Gate":
        train = np.ascontiguousarray(read_idx(files.paths["train-images"], 3))
        test = np.ascontiguousarray(read_idx(files.paths["test-images"], 3))
        known = {h: f"training image {i}" for h, i in _hashes(train).items()}
        known.update({h: f"test image {i}" for h, i in _hashes(test).items()})
        for increment in files.increments:
            known.update({h: f"item {i} of increment {increment.id}" for i, h in enumerate(increment.item_sha256)})
        return cls(known, np.array([perceptual_hash(image) for image in test]), threshold)

    def refusal(self, pixels: np.ndarray, origin: str) -> str | None:
        """Why this prepared image may not join the dataset, or None; an accepted one is remembered."""
        content = item_sha256(pixels)
        if content in self.known:
            return f"exact duplicate of {self.known[content]}"
        if content in self.seen:
            return f"exact duplicate of {self.seen[content]} in this batch"
        distances = (self.test_hashes != perceptual_hash(pixels)).sum(axis=1)
        nearest = int(distances.argmin())
        if distances[nearest] <= self.threshold:
            return (f"near-duplicate of test image {nearest} (perceptual-hash distance {int(distances[nearest])} "
                    f"of {HASH_SIZE**2} bits, at most {self.threshold} is refused)")
        self.seen[content] = origin
        return None
