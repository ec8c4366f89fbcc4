"""One ``.gz`` file from one mirror, verified as it streams, within bounds.

The file is read in chunks (from HTTP or a local directory), decompressed as a
stream and written to a temporary file: memory holds a chunk, never the file.
What can go wrong is bounded and named:

- the decompressed size may not pass what the dataset (or, for a custom one,
  the IDX header) says the file holds: a gzip bomb stops at that bound;
- a mirror gets ``Limits.connect`` seconds to answer and to send each next
  byte, and the whole file must arrive within ``grace`` seconds plus its size
  at ``min_rate`` bytes a second: a silent or trickling server is given up on;
- a connection closed mid-body is a transient fault, like a refused one.

Exceptions say which of three things happened, so the caller can decide what
to try next: ``Transient`` (try this mirror again), ``Stalled`` and
``Unusable`` (go on to the next mirror), ``WrongBytes`` (the mirror answered,
with the wrong bytes).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import MnistflowError
from .idx import header_size, parse_header

CHUNK = 1 << 16
# A custom dataset's file may not decompress past this, whatever its header claims.
MAX_CUSTOM_BYTES = 2 << 30


class Transient(Exception):
    """Refused, reset, HTTP 5xx, closed mid-body: worth another try later."""


class Stalled(Exception):
    """Silent or too slow: asking again would only wait as long again."""


class Unusable(Exception):
    """The mirror cannot serve this file (HTTP 404, no such directory or file)."""


class WrongBytes(Exception):
    """The mirror served bytes that are not the file (corrupt, a bomb, another md5)."""

    def __init__(self, message: str, uncompressed_md5: str | None = None) -> None:
        super().__init__(message)
        self.uncompressed_md5 = uncompressed_md5


@dataclass(frozen=True)
class Limits:
    connect: float = 10.0          # seconds to answer, and the longest silence mid-file
    grace: float = 30.0            # seconds every file gets, whatever its size
    min_rate: float = 256 * 1024   # bytes a second, on average, beyond the grace


@dataclass(frozen=True)
class Fetched:
    md5: str             # of the uncompressed bytes
    gz_md5: str          # of the bytes as served
    size: int            # uncompressed


def _open(mirror: str, name: str, limits: Limits) -> tuple[BinaryIO, int | None]:
    if "://" not in mirror:
        path = Path(mirror).expanduser() / name
        if not path.parent.is_dir():
            raise Unusable(f"no such directory {path.parent}")
        try:
            return open(path, "rb"), path.stat().st_size
        except FileNotFoundError:
            raise Unusable(f"no file {name}") from None
    url = mirror.rstrip("/") + "/" + name
    try:
        response = urllib.request.urlopen(url, timeout=limits.connect)
    except urllib.error.HTTPError as exc:
        # 5xx and 429 are worth another try; 404 and friends are not.
        if exc.code >= 500 or exc.code == 429:
            raise Transient(f"HTTP {exc.code}") from None
        raise Unusable(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            raise Stalled(f"no answer within {limits.connect:g}s") from None
        raise Transient(str(exc.reason)) from None
    except (socket.timeout, TimeoutError):
        raise Stalled(f"no answer within {limits.connect:g}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise Transient(str(exc) or type(exc).__name__) from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


def fetch(mirror: str, name: str, ndim: int, expected_size: int | None, checksum_md5: str,
          checksum_uncompressed: bool, target: Path, limits: Limits) -> Fetched:
    """Stream ``mirror/name`` into ``target`` (a temporary path), checking everything on the way."""
    started = time.monotonic()
    source, length = _open(mirror, name, limits)
    budget = limits.grace + (length or expected_size or MAX_CUSTOM_BYTES) / limits.min_rate
    bound = expected_size or MAX_CUSTOM_BYTES
    gz_md5, md5 = hashlib.md5(), hashlib.md5()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    received = written = 0
    head = b""
    with source, open(target, "wb") as out:
        while True:
            try:
                chunk = source.read1(CHUNK)  # what has arrived, not a full chunk: the deadline is checked between
            except (socket.timeout, TimeoutError):
                raise Stalled(f"stalled: no byte for {limits.connect:g}s after {received} bytes") from None
            except (OSError, http.client.HTTPException) as exc:
                raise Transient(f"connection broke after {received} bytes ({type(exc).__name__})") from None
            if not chunk:
                break
            received += len(chunk)
            gz_md5.update(chunk)
            if time.monotonic() - started > budget:
                raise Stalled(f"too slow: {received} bytes in {budget:.0f}s "
                              f"(under {limits.min_rate / 1024:.0f} KiB/s)")
            while chunk:
                try:
                    # At most a MiB at a time, and never past the bound but for one byte
                    # to notice the excess: a bomb never gets the chance to fill memory.
                    raw = inflate.decompress(chunk, min(bound - written + 1, 1 << 20))
                except zlib.error as exc:
                    raise WrongBytes(f"not a complete gzip file ({exc})") from None
                chunk = inflate.unconsumed_tail
                if inflate.eof and inflate.unused_data:  # another gzip member follows
                    chunk, inflate = inflate.unused_data + chunk, zlib.decompressobj(16 + zlib.MAX_WBITS)
                written += len(raw)
                if len(head) < header_size(ndim):
                    head += raw[:header_size(ndim) - len(head)]
                    if len(head) == header_size(ndim):
                        bound = _bound_from_header(name, head, ndim, expected_size)
                if written > bound:
                    raise WrongBytes(f"decompresses to more than the {bound} bytes this file can hold "
                                     "(a gzip bomb?); stopped there")
                md5.update(raw)
                out.write(raw)
    if length is not None and received != length:
        raise Transient(f"connection closed after {received} of {length} bytes")
    if not inflate.eof:
        raise WrongBytes("not a complete gzip file (it ends early)")
    if written != bound:
        raise WrongBytes(f"wrong length {written} bytes (the IDX header says {bound})")
    result = Fetched(md5.hexdigest(), gz_md5.hexdigest(), written)
    got = result.md5 if checksum_uncompressed else result.gz_md5
    if got != checksum_md5:
        what = "uncompressed md5" if checksum_uncompressed else "md5 of the .gz"
        raise WrongBytes(f"{what} {got} is not the expected {checksum_md5}", result.md5)
    return result


def _bound_from_header(name: str, head: bytes, ndim: int, expected_size: int | None) -> int:
    try:
        dims, size = parse_header(Path(name), head, ndim)
    except MnistflowError as exc:
        raise WrongBytes(str(exc).split(": ", 1)[-1]) from None
    if expected_size is not None and size != expected_size:
        raise WrongBytes(f"its IDX header declares {dims} ({size} bytes), not the dataset's {expected_size}")
    if size > MAX_CUSTOM_BYTES:
        raise WrongBytes(f"its IDX header declares {dims} ({size} bytes), over the {MAX_CUSTOM_BYTES}-byte limit")
    return size
