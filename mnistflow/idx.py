"""IDX parsing straight from bytes: no pickles, no PIL, one numpy view per file."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import MnistflowError

# The third magic byte is the element type; MNIST-family files are all uint8.
_UBYTE = 0x08


def gunzip(path: Path, blob: bytes) -> bytes:
    try:
        return gzip.decompress(blob)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError is a truncated stream; OSError/zlib.error a damaged one.
        raise MnistflowError(f"{path}: not a complete gzip file ({exc})") from None


def header_size(ndim: int) -> int:
    return 4 + 4 * ndim


def parse_header(path: Path, raw: bytes, ndim: int) -> tuple[list[int], int]:
    """The dimensions an IDX header declares and the file length they imply."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise MnistflowError(f"{path}: not an IDX file (wrong magic number)")
    if raw[2] != _UBYTE or raw[3] != ndim:
        raise MnistflowError(
            f"{path}: wrong magic number 0x{raw[:4].hex()} (expected 0x0000080{ndim})"
        )
    header = header_size(ndim)
    if len(raw) < header:
        raise MnistflowError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return dims, header + int(np.prod(dims, dtype=np.int64))


def parse_idx(path: Path, raw: bytes, ndim: int) -> np.ndarray:
    """Parse uncompressed IDX bytes; ``ndim`` is 3 for images, 1 for labels."""
    dims, expected = parse_header(path, raw, ndim)
    header = header_size(ndim)
    if len(raw) != expected:
        raise MnistflowError(
            f"{path}: wrong length {len(raw)} bytes (header {dims} says {expected})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an IDX file, gzipped (``.gz``) or not."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise MnistflowError(f"{path}: missing (run the download step first)") from None
    return parse_idx(path, gunzip(path, blob) if path.suffix == ".gz" else blob, ndim)


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of parse_idx, for tests and tools that make small datasets."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()
