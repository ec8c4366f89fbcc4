"""One writer per run folder: a flow run holds ``<run>/.run.lock`` while it writes there.

Two runs in one folder outside the DVC workspace once overwrote each other's
checkpoints, and the loser was told to "run training first" although it had
trained. The lock is an ``flock`` on a file in the folder: the kernel lets it go
when its process ends however it ends, so a killed run never leaves a stale
lock behind. The second run is refused at once, in one line naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import MnistflowError

LOCK_NAME = ".run.lock"


@contextlib.contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise MnistflowError(f"{folder}: another run ({holder}) is writing this run folder; wait for it to "
                                 "end, or give this run its own --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing lets the lock go
