"""One writer per run folder: a flow run holds ``<run>/.run.lock`` while it writes there.

Two runs in one folder outside the DVC workspace once overwrote each other's
checkpoints, and the loser was told to "run training first" although it had
trained. The lock is an ``flock`` on a file in the folder: the kernel lets it go
when its process ends however it ends, so a killed run never leaves a stale
lock behind, and the file is removed when the run ends. The second run is
refused at once, in one line naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import MnistflowError

LOCK_NAME = ".run.lock"


def _locked(path: Path, folder: Path) -> int:
    """An open descriptor of ``path`` holding its lock; refused at once when another run holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise MnistflowError(f"{folder}: another run ({holder}) is writing this run folder; wait for it to "
                                 "end, or give this run its own --run-dir") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was removed by the run that just ended: lock the new one


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _locked(path, folder)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        # Removed while still held, so a finished run leaves its folder as it found it;
        # a run that opened the old file meanwhile sees it gone and locks a new one.
        path.unlink(missing_ok=True)
        os.close(fd)
