"""The predict CLI's inputs, read within bounds: pictures whole (they are small), IDX files as a stream.

Every input is checked before any answer is printed: that it is a regular file
(never ``/dev/zero`` or a pipe), what it is by its first bytes (a sparse 1 GB
"picture" of zeros is refused unread), that a picture is at most
``MAX_PICTURE_BYTES``, and that an IDX file's header fits the model and, for an
uncompressed one, the file's length. Pictures are then decoded and prepared at
once; IDX images are read ``CHUNK`` at a time, gzipped or not, so memory holds
one chunk whatever the file declares, and a gzip bomb cannot inflate past what
its header says.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mnistflow.errors import MnistflowError
from mnistflow.idx import header_size, parse_header

from pictures.imaging import ImageError, decode_image, to_model_input

CHUNK = 1000  # images per forward pass
MAX_PICTURE_BYTES = 32 * 2**20  # a photographed page is a few MB
GZIP_MAGIC = b"\x1f\x8b"
IDX_IMAGES_MAGIC = bytes([0, 0, 0x08, 0x03])
PICTURE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                  b"RIFF")


@dataclass
class Input:
    """One checked input: a prepared picture, or an IDX file of ``count`` images to stream."""

    path: Path
    picture: np.ndarray | None = None
    count: int = 0
    gzipped: bool = False

    @property
    def name(self) -> str:
        return str(self.path)


def _regular(path: Path) -> int:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise MnistflowError(f"{path}: not a regular file (give a picture or an IDX file)")
    return info.st_size


def _head(fh: BinaryIO, path: Path, size: int) -> bytes:
    try:
        return fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise MnistflowError(f"{path}: not a complete gzip file ({exc})") from None


def _gunzipped_length(path: Path, bound: int) -> int:
    """The decompressed length, read through once and never past ``bound`` + 1 bytes
    (a bomb stops there), so that a gzip error is found before any answer is printed."""
    total = 0
    with gzip.open(path, "rb") as fh:
        while total <= bound:
            got = len(_head(fh, path, min(1 << 20, bound + 1 - total)))
            if not got:
                break
            total += got
    return total


def check_input(path: Path, shape: tuple[int, int]) -> Input:
    """What ``path`` is, checked from its first bytes; a picture is also decoded and prepared."""
    size = _regular(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    gzipped = head[:2] == GZIP_MAGIC
    if gzipped:
        with gzip.open(path, "rb") as fh:
            head = _head(fh, path, header_size(3))
    if head[:4] == IDX_IMAGES_MAGIC:
        (count, height, width), length = parse_header(path, head, 3)
        if (height, width) != shape:
            raise MnistflowError(f"{path}: {height}x{width} images; the model takes {shape[0]}x{shape[1]}")
        actual = _gunzipped_length(path, length) if gzipped else size
        if actual > length:
            raise MnistflowError(f"{path}: holds more than the {count} images its header declares")
        if actual != length:
            raise MnistflowError(f"{path}: wrong length {actual} bytes (header {[count, height, width]} says {length})")
        return Input(path, count=count, gzipped=gzipped)
    if gzipped or not head.startswith(PICTURE_MAGICS):
        raise MnistflowError(f"{path}: not an image (PNG, JPEG, GIF, BMP, TIFF, WebP) or an IDX file of images")
    if size > MAX_PICTURE_BYTES:
        raise MnistflowError(f"{path}: {size:,} bytes; a picture is at most {MAX_PICTURE_BYTES:,}")
    try:
        return Input(path, picture=to_model_input(decode_image(path.read_bytes(), str(path)), shape))
    except ImageError as exc:
        raise MnistflowError(str(exc)) from None


def idx_chunks(item: Input, shape: tuple[int, int], chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """The IDX file's images, ``chunk`` at a time, as float32 in [0, 1]."""
    pixels = shape[0] * shape[1]
    opener = gzip.open if item.gzipped else open
    with opener(item.path, "rb") as fh:
        _head(fh, item.path, header_size(3))
        left = item.count
        while left:
            n = min(chunk, left)
            raw = _head(fh, item.path, n * pixels)
            if len(raw) != n * pixels:
                raise MnistflowError(f"{item.path}: ends after {item.count - left + len(raw) // pixels} of the "
                                     f"{item.count} images its header declares")
            yield np.frombuffer(raw, dtype=np.uint8).reshape(n, *shape).astype(np.float32) / 255.0
            left -= n
        if _head(fh, item.path, 1):
            raise MnistflowError(f"{item.path}: holds more than the {item.count} images its header declares")


def shown(name: str) -> str:
    """A file name as the text output prints it: quoted when it holds a newline or another
    character that would break the line, as it is otherwise."""
    import json

    return name if name.isprintable() else json.dumps(name)
