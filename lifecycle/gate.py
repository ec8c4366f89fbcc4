"""The intake gate: which candidates may join the dataset, and why the others may not.

Rules, per item, in order (the first that fails is its reason):

1. it was read: it decodes, its label is one of the dataset's classes, its
   size and shape fit (``lifecycle.intake_sources``);
2. it is not an exact copy, after preparation, of any training, validation,
   test or earlier-increment image, nor of an earlier item of the same batch;
3. it is not a near-copy of a test image: its perceptual hash (imagehash's
   pHash, 16x16 = 256 bits), or that of the item moved by one pixel any way
   (pHash is not shift-invariant), lies within ``NEAR_DUPLICATE_BITS`` of a
   test image's. A test image that leaks into training makes every later judge
   of champion against challenger unfair.

The threshold, measured on the real MNIST (``python -m bench.near_duplicates``,
4,000 samples): at 16 bits the gate catches 100% of test images re-encoded
through a resize, dimmed by 20%, or moved by one pixel (dimmed too: 100%); 95%
of those noised by sigma 10 grey levels and 55% at sigma 20; and it refuses
none of 4,000 of MNIST's own training images (0.15% at 20 bits, 0.55% at 24).
A picture source is re-centred by preparation, so a moved copy arrives
unmoved; an IDX source moved by two pixels or more is not caught. (At pHash's
default 8x8 = 64 bits, 4 bits already refuses 39% of training images: at 28x28
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
    """imagehash's pHash of one uint8 image, its HASH_SIZE**2 bits packed into uint64 words."""
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(np.asarray(pixels, dtype=np.uint8)), hash_size=HASH_SIZE).hash.ravel()
    return np.packbits(bits).view(np.uint64)


def hamming(hashes: np.ndarray, one: np.ndarray) -> np.ndarray:
    """Differing bits between each row of ``hashes`` and ``one`` (packed hashes): XOR, then a popcount."""
    return _popcount(hashes ^ one).sum(axis=1)


def _popcount(words: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(words)
    return np.unpackbits(words.view(np.uint8), axis=-1).reshape(*words.shape, 64).sum(axis=-1)


# pHash is not shift-invariant: a test image moved by a pixel is 60-80 bits away.
# The candidate is also hashed moved by one pixel each way (9 hashes in all).
SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def nearest_test_distances(test_hashes: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Per test image, the fewest differing bits from any of the candidate's shifted hashes."""
    shifted = [np.roll(pixels, shift, axis=(0, 1)) for shift in SHIFTS]
    return np.min([hamming(test_hashes, perceptual_hash(image)) for image in shifted], axis=0)


def _hashes(images: np.ndarray) -> dict[str, int]:
    # The same hash as the increments' item hash: raw row-major uint8 bytes.
    return {hashlib.sha256(image.tobytes()).hexdigest(): i for i, image in enumerate(images)}


@dataclass
class Gate:
    """What a dataset already holds, indexed for the rules above."""

    known: dict[str, str]           # content hash -> where that image already is
    test_hashes: np.ndarray          # (n_test, HASH_SIZE**2 / 64) uint64, packed
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
        distances = nearest_test_distances(self.test_hashes, pixels)
        nearest = int(distances.argmin())
        if distances[nearest] <= self.threshold:
            return (f"near-duplicate of test image {nearest} (perceptual-hash distance {int(distances[nearest])} "
                    f"of {HASH_SIZE**2} bits, at most {self.threshold} is refused)")
        self.seen[content] = origin
        return None
