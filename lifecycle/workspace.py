"""The DVC workspace: one writer at a time, by DVC's own locks.

A run whose folder is one that ``dvc.yaml`` writes (``outputs/``) shares it with
`dvc repro`. It takes the locks a `dvc repro` stage takes, the same way:
under DVC's repository lock (``.dvc/tmp/lock``) it records in DVC's path lock
(``.dvc/tmp/rwlock``) that it writes the run folder and the dataset, then lets
the repository lock go and keeps the path lock until its last write. A
`dvc repro` stage that writes there meanwhile stops with DVC's own "is busy,
it is being blocked by ... flows.training"; a run that finds a stage at work
waits for it (``MNISTFLOW_DVC_LOCK_WAIT`` seconds, default 600), then refuses
in one line. DVC commands of the run's own (``dvc commit``, ``dvc push``) go
through the same ``dvc.repo.Repo``, in this process, so its locks are its own.
A run in any other folder needs no lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from mnistflow.errors import MnistflowError
from mnistflow.private_api import SWITCH_ENV, enabled

log = logging.getLogger(__name__)

WAIT_ENV = "MNISTFLOW_DVC_LOCK_WAIT"
DEFAULT_WAIT = 600.0
_held: dict[Path, Any] = {}  # repository root -> the dvc Repo holding its lock in this process


@contextlib.contextmanager
def dvc_path_lock(repo: Any, writes: list[str]) -> Iterator[bool]:
    """Under DVC's repository lock, record in its path lock that this process writes
    ``writes``, then let the repository lock go and keep the path lock until the block
    ends, as a `dvc repro` stage does. Yields whether the lock is held. Raises
    ``dvc.lock.LockError`` while another DVC process holds either lock."""
    if not enabled("dvc-locks"):
        yield False
        return
    from dvc.repo import lock_repo
    from dvc.rwlock import rwlock

    hardlink = repo.config["core"].get("hardlink_lock", False)
    with contextlib.ExitStack() as stack:
        with lock_repo(repo):  # DVC's Lock retries for ~3 s itself
            # The command recorded is what DVC records for its own stages, so this
            # process's own `dvc commit` later sees the entries as its own.
            stack.enter_context(rwlock(repo.tmp_dir, repo.fs, " ".join(sys.argv), [], writes, hardlink))
        yield True


def dvc_root_writing(run_dir: Path) -> Path | None:
    """The DVC repository whose pipeline writes ``run_dir``, if any."""
    run_dir = Path(run_dir).resolve()
    for root in (run_dir, *run_dir.parents):
        if (root / ".dvc").is_dir() and (root / "dvc.yaml").is_file():
            break
    else:
        return None
    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        return None
    rel = run_dir.relative_to(root)
    for stage in stages.values():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            path = Path(_interpolated(next(iter(out)) if isinstance(out, dict) else out, root))
            if path == rel or rel in path.parents or path in rel.parents:
                return root
    return None


INTERPOLATION = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


def check_dvc_params(root: Path) -> None:
    """Every ``${...}`` dvc.yaml reads, set in the repository's params.yaml. DVC reads the
    file itself, without the defaults mnistflow fills in, so a params.yaml that leaves one
    out trained to the end and then failed at `dvc commit` ("Could not find
    'data.dataset'"). Refused here, before anything runs."""
    names = sorted(set(INTERPOLATION.findall((root / "dvc.yaml").read_text())))
    try:
        raw = yaml.safe_load((root / "params.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return  # a missing or broken params.yaml is load_params' to name
    for name in names:
        node: Any = raw
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            raise MnistflowError(f"{root / 'params.yaml'}: {name} is not set, and dvc.yaml reads it (${{{name}}}) "
                                 "for the run's `dvc commit`; write it out, even where it is the default")


def _interpolated(path: str, root: Path) -> str:
    """``data/${data.dataset}`` as DVC reads it: ``${...}`` from the repository's params.yaml
    (its defaults where the file leaves a key out)."""
    if "${" not in path:
        return path
    from mnistflow.params import load_params

    try:
        params = load_params(root / "params.yaml").model_dump(mode="json")
    except MnistflowError:
        params = {}

    def value(match: re.Match) -> str:
        node: Any = params
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return str(node) if node is not None else match.group(0)

    return INTERPOLATION.sub(value, path)


def _wait_seconds() -> float:
    raw = os.environ.get(WAIT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        raise MnistflowError(f"{WAIT_ENV}: not a number of seconds ({raw!r})") from None


@contextlib.contextmanager
def dvc_lock(root: Path, writes: list[Path], wait: float | None = None) -> Iterator[Any]:
    """Hold DVC's path lock on ``writes`` (inside ``root``); yields the ``dvc.repo.Repo``."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    root = Path(root).resolve()
    paths = [os.fspath(Path(p).resolve()) for p in writes if Path(p).resolve().is_relative_to(root)]
    wait = _wait_seconds() if wait is None else wait
    deadline, said = time.monotonic() + wait, False
    with contextlib.ExitStack() as stack:
        repo = stack.enter_context(Repo(os.fspath(root)))
        while True:
            try:
                held = stack.enter_context(dvc_path_lock(repo, paths))
                break
            except LockError:
                if time.monotonic() >= deadline:
                    raise MnistflowError(
                        f"{root}: another DVC process (dvc repro?) holds the repository lock or "
                        f"writes {', '.join(os.path.relpath(p, root) for p in paths)}; waited {wait:.0f}s. "
                        "Run again when it ends") from None
                if not said:
                    log.warning("%s: waiting for another DVC process (dvc repro?) to finish with %s", root,
                                ", ".join(os.path.relpath(p, root) for p in paths))
                    said = True
                time.sleep(0.5)
        if not held and paths:
            log.warning("%s: DVC's locks are off (%s): a `dvc repro` may write %s meanwhile", root,
                        SWITCH_ENV, ", ".join(os.path.relpath(p, root) for p in paths))
        _held[root] = repo
        try:
            yield repo
        finally:
            del _held[root]


def held_repo(root: Path) -> Any | None:
    """The Repo that holds ``root``'s lock in this process, if one does."""
    return _held.get(Path(root).resolve())
