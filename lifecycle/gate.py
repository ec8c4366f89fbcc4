"""The intake gate: which candidates may join the dataset, and why the others may not.

Rules, per item, in order (the first that fails is its reason):

1. it was read: it decodes, its label is one of the dataset's classes, its
   size and shape fit (``lifecycle.intake_sources``);
2. it is not an exact copy, after preparation, of any training, validation,
   test or earlier-increment image, nor of an earlier item of the same batch;
3. it is not a near-copy of a test image by its pixels: its perceptual hash
   (imagehash's pHash, 16x16 = 256 bits), or that of the item moved by one
   pixel any way (pHash is not shift-invariant), lies within
   ``NEAR_DUPLICATE_BITS`` of a test image's;
4. it is not a near-copy of a test image by its whole frame: a picture, taken
   whole (no crop, no re-centring) and resized to the dataset's shape, nor an
   IDX item, correlates with a test image, after both are smoothed, within
   ``NEAR_COPY_DISTANCE``, and that test image is much nearer than the next
   (``NEAR_COPY_RATIO``). A test image saved as a picture file (upscaled,
   downscaled and back, JPEG) is re-cropped and re-scaled by preparation, which
   no hash survives; its whole frame comes back nearly as it was.

A test image that leaks into training makes every later judge of champion
against challenger unfair.

Measured on the real MNIST (``python -m bench.near_duplicates``): rule 3 at 16
bits catches 100% of test images whose pixels are resized and back, dimmed by
20% or moved by one pixel, and refuses none of MNIST's own training images;
rule 4 catches 100% of test images saved as bilinear, bicubic or nearest
upscales by 2-4x, or as JPEG, and 96-100% of those shrunk to 14-20 px and
grown back (half the detail gone); rules 3 and 4 together refuse 0.4% of
MNIST's training images (the target was <= 0.5%). Genuine new digits are as
near to some test digit as a blurred copy is to its own: the ratio to the next
nearest is what tells them apart. An IDX source moved by two pixels or more is
not caught.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from mnistflow.dataset_files import DatasetFiles
from mnistflow.idx import read_idx
from mnistflow.increments import item_sha256

HASH_SIZE = 16
NEAR_DUPLICATE_BITS = 16
# Rule 4. Smoothing both sides by SMOOTHING px makes resampling's blur and JPEG's
# ringing small against a different hand's strokes; the test set is also indexed
# blurred by COPY_BLUR px, for copies that passed through a smaller size.
SMOOTHING, COPY_BLUR = 1.0, 1.0
NEAR_COPY_DISTANCE = 0.006  # 1 - correlation with the nearest test image
NEAR_COPY_RATIO = 0.5       # that distance over the next nearest test image's


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


def _smoothed_rows(images: np.ndarray, blur: float) -> np.ndarray:
    """Each image smoothed, centred and scaled to unit length: dot products are correlations."""
    from scipy.ndimage import gaussian_filter

    rows = gaussian_filter(np.asarray(images, dtype=np.float32), (0, blur, blur)).reshape(len(images), -1)
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


@dataclass
class FrameIndex:
    """The test set for rule 4: each image smoothed, and smoothed after a blur."""

    rows: np.ndarray  # (2 * n_test, pixels) float32, unit rows

    @classmethod
    def of(cls, test: np.ndarray) -> "FrameIndex":
        blurred = np.sqrt(SMOOTHING ** 2 + COPY_BLUR ** 2)  # two Gaussian blurs in a row are one
        return cls(np.concatenate([_smoothed_rows(test, SMOOTHING), _smoothed_rows(test, blurred)]))

    def nearest(self, frame: np.ndarray) -> tuple[int, float, float]:
        """The nearest test image to ``frame`` (moved by a pixel any way), its distance
        (1 - correlation), and that over the next nearest test image's distance."""
        moved = _smoothed_rows(np.stack([np.roll(frame, shift, axis=(0, 1)) for shift in SHIFTS]), SMOOTHING)
        similarity = (self.rows @ moved.T).max(axis=1)
        half = len(similarity) // 2
        distance = 1.0 - np.maximum(similarity[:half], similarity[half:])
        if half < 2:
            return 0, float(distance[0]), 0.0
        first, second = np.partition(distance, 1)[:2]
        return int(distance.argmin()), float(first), float(first / max(second, 1e-9))


def _hashes(images: np.ndarray) -> dict[str, int]:
    # The same hash as the increments' item hash: raw row-major uint8 bytes.
    return {hashlib.sha256(image.tobytes()).hexdigest(): i for i, image in enumerate(images)}


@dataclass
class Gate:
    """What a dataset already holds, indexed for the rules above."""

    known: dict[str, str]           # content hash -> where that image already is
    test_hashes: np.ndarray          # (n_test, HASH_SIZE**2 / 64) uint64, packed
    test_frames: FrameIndex
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
        return cls(known, np.array([perceptual_hash(image) for image in test]), FrameIndex.of(test), threshold)

    def refusal(self, pixels: np.ndarray, origin: str, frame: np.ndarray | None = None) -> str | None:
        """Why this prepared image may not join the dataset, or None; an accepted one is remembered.
        ``frame``: a picture's whole frame (``pictures.imaging.whole_frame``); None: ``pixels`` are the source."""
        content = item_sha256(pixels)
        if content in self.known:
            return f"exact duplicate of {self.known[content]}"
        if content in self.seen:
            return f"exact duplicate of {self.seen[content]} in this batch"
        reason = self.near_copy(pixels, frame)
        if reason:
            return reason
        self.seen[content] = origin
        return None

    def near_copy(self, pixels: np.ndarray, frame: np.ndarray | None = None) -> str | None:
        """Rules 3 and 4: why this item is a near-copy of a test image, or None."""
        distances = nearest_test_distances(self.test_hashes, pixels)
        nearest = int(distances.argmin())
        if distances[nearest] <= self.threshold:
            return (f"near-duplicate of test image {nearest} (perceptual-hash distance {int(distances[nearest])} "
                    f"of {HASH_SIZE**2} bits, at most {self.threshold} is refused)")
        nearest, distance, ratio = self.test_frames.nearest(pixels if frame is None else frame)
        if distance <= NEAR_COPY_DISTANCE and ratio <= NEAR_COPY_RATIO:
            return (f"near-copy of test image {nearest} as a whole picture (correlation distance {distance:.4f}, "
                    f"{ratio:.2f} of the next nearest's; at most {NEAR_COPY_DISTANCE} and {NEAR_COPY_RATIO} "
                    "are refused)")
        return None
