"""Atomic writes: every file a later step reads appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import MnistflowError

# mkstemp creates 0600 files; published outputs get the usual umask instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is a rename within one filesystem, which POSIX makes atomic. On any error
    the temporary file is removed and ``path`` keeps its previous content. A
    full disk is the user's to fix, not a fault to retry: it is one line naming
    the file and (when ``size`` is known) the space it needs.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())  # the rename must not land before the bytes do
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        needs = f" for its {size:,} bytes" if size is not None else ""
        raise MnistflowError(f"{path}: no space left on the device{needs}; free some space "
                             "(nothing was half-written)") from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    # sort_keys and a fixed indent keep the bytes identical across entry points.
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary path (torch.save, savefig), then publish it."""
    with atomic_path(path) as tmp:
        writer(tmp)


def sha256_of(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def stamp(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(inode, mtime, size), or None when absent: a file replaced by rename, as
    every file here is, gets a new stamp without its bytes being read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename into ``path`` durable (the directory entry, not only the bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
