"""Installing a version as the champion: all its files change as one unit.

``<registry>/champion`` is a symbolic link to a complete folder,
``<registry>/installed/<N>-<ns>/``, holding the version's files and the
champion's record. An install writes a new such folder in full (under a dot
name, renamed into place), then points ``champion`` at it by renaming a new link
over the old one: POSIX makes that rename atomic, so a reader (the service, the
monitor, the next retrain) sees the old champion whole or the new one whole,
however the installing process ends. A process killed part way leaves only a dot
folder or a dot link, which the next install removes. ``<registry>/shadow`` (a
challenger answering beside the champion, lifecycle.shadow) is installed the
same way.

Paths stay the same for readers: ``champion/model.pt`` resolves through the
link. A champion folder from before links (a real directory) is moved into
``installed/`` at its first install: the one moment a reader finds no champion.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from mnistflow import atomic
from lifecycle.registry_paths import RegistryPaths

INSTALLED = "installed"
# The folder the link left last stays one install longer: a reader that resolved
# the old link a moment ago can still finish reading its files.
KEEP_PREVIOUS = 1
LINKS = ("champion", "shadow")  # the links to installed folders: the model in service, and its shadow


def installed_dir(registry: RegistryPaths) -> Path:
    return registry.dir / INSTALLED


def install_files(registry: RegistryPaths, number: int, files: dict[str, Path], record: dict[str, Any],
                  link: str = "champion") -> Path:
    """Make ``files`` (name -> source path) and ``record`` the champion (or the ``shadow``,
    lifecycle.shadow), version ``number``, in one rename."""
    root = installed_dir(registry)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(registry)
    _adopt_real_folder(registry)
    name = f"{number}-{time.time_ns()}"
    scratch = root / f".{name}"
    scratch.mkdir()
    for file_name, source in files.items():
        atomic.write_bytes(scratch / file_name, source.read_bytes())
    atomic.write_json(scratch / "record.json", record)
    os.rename(scratch, root / name)
    atomic.fsync_dir(root)
    _point_at(registry, link, Path(INSTALLED) / name)
    _remove_old_folders(registry)
    return root / name


def _point_at(registry: RegistryPaths, link: str, target: Path) -> None:
    """Switch the link ``link`` to ``target`` (relative to the registry, so the registry can move)."""
    new_link = registry.dir / f".{link}-{os.getpid()}"
    new_link.unlink(missing_ok=True)
    os.symlink(target, new_link)
    os.replace(new_link, registry.dir / link)
    atomic.fsync_dir(registry.dir)


def remove_link(registry: RegistryPaths, link: str) -> None:
    """Take ``link`` away in one unlink; its folder goes at a later install."""
    (registry.dir / link).unlink(missing_ok=True)
    atomic.fsync_dir(registry.dir)


def _adopt_real_folder(registry: RegistryPaths) -> None:
    """A champion folder from before links becomes an installed folder that the link points at."""
    champion = registry.champion
    if champion.is_symlink() or not champion.is_dir():
        return
    adopted = Path(INSTALLED) / f"0-{time.time_ns()}"
    os.rename(champion, registry.dir / adopted)
    _point_at(registry, "champion", adopted)


def serving_folder(registry: RegistryPaths, link: str = "champion") -> Path | None:
    """The installed folder ``champion`` (or ``shadow``) points at, or None."""
    if not (registry.dir / link).is_symlink():
        return None
    return (registry.dir / os.readlink(registry.dir / link)).resolve()


def _remove_leftovers(registry: RegistryPaths) -> None:
    """What a killed install left: a half-written dot folder, a dot link not yet renamed."""
    for link in (*registry.dir.glob(".champion-*"), *registry.dir.glob(".shadow-*")):
        link.unlink(missing_ok=True)
    for scratch in installed_dir(registry).glob(".*"):
        shutil.rmtree(scratch, ignore_errors=True)


def _installed_at(folder: Path) -> int:
    stamp = folder.name.rpartition("-")[2]
    return int(stamp) if stamp.isascii() and stamp.isdigit() else 0


def _remove_old_folders(registry: RegistryPaths) -> None:
    current = {serving_folder(registry, link) for link in LINKS}
    folders = sorted((f for f in installed_dir(registry).iterdir() if not f.name.startswith(".")),
                     key=_installed_at)
    older = [f for f in folders if f.resolve() not in current]
    for folder in older[:max(len(older) - KEEP_PREVIOUS, 0)]:
        shutil.rmtree(folder, ignore_errors=True)
