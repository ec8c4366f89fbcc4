"""Version a run with DVC and git: `dvc commit`, `dvc push`, and a git commit of dvc.lock.

Runs in the repository whose ``outputs/`` the run wrote (DVC records the
workspace). It goes through DVC's Python API under the locks the run already
holds (lifecycle.workspace), so no `dvc repro` can slip in between the run's
last write and its commit.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from pathlib import Path
from typing import Any

from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from mnistflow.paths import RunPaths

from .workspace import dvc_lock, held_repo


def outside_workspace(paths: RunPaths) -> dict[str, Any]:
    return {"versioned": False, "why": f"run folder {paths.dir} is not a DVC workspace; dvc.lock not updated"}


def version_run(dvc_root: Path | None, paths: RunPaths, params: Params, message: str, push: bool,
                git_commit: bool = True) -> dict[str, Any]:
    """dvc commit the run (and push it, and git-commit dvc.lock), when dvc.lock would tell the
    truth: DVC records its workspace and params.yaml, so a run elsewhere, or with other
    params, would make dvc.lock lie, and is not versioned (the answer says why)."""
    if dvc_root is None:
        return outside_workspace(paths)
    params_file = dvc_root / "params.yaml"
    try:
        on_disk = load_params(params_file)
    except MnistflowError:
        on_disk = None
    if on_disk != params:
        return {"versioned": False, "why": f"run params differ from {params_file}; dvc.lock not updated"}
    return version_with_dvc(dvc_root, message, push=push, git_commit=git_commit)


def version_with_dvc(root: Path, message: str, push: bool = True, git_commit: bool = True) -> dict[str, Any]:
    """Record the run's data, checkpoint and metrics in dvc.lock and the DVC cache,
    push them to the default remote (``push``), and commit dvc.lock to git (``git_commit``)."""
    from dvc.exceptions import DvcException

    # DVC prints its own lines ("Updating lock file"); passed on to the root logger too,
    # each came out twice in a flow run's terminal.
    logging.getLogger("dvc").propagate = False
    root = Path(root)
    if not (root / "dvc.yaml").exists() or not (root / ".dvc").is_dir():
        return {"versioned": False, "why": f"{root} is not a DVC repository"}
    held = held_repo(root)
    with (contextlib.nullcontext(held) if held is not None else dvc_lock(root, [])) as repo:
        for step, action in (("commit", lambda: repo.commit(force=True)),
                             *((("push", repo.push),) if push else ())):
            try:
                action()
            except DvcException as exc:
                failed = MnistflowError(f"dvc {step} failed: {str(exc).strip().splitlines()[0]}")
                failed.retryable = step == "push"  # a remote may come back; a commit would fail the same way
                raise failed from None
    out: dict[str, Any] = {"versioned": True, "pushed": push}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)

    if git_commit and git("rev-parse", "--git-dir").returncode == 0:
        git("add", "dvc.lock")
        if git("diff", "--cached", "--quiet", "--", "dvc.lock").returncode == 1:
            commit = git("commit", "-q", "-m", message, "--", "dvc.lock")
            if commit.returncode != 0:
                raise MnistflowError(f"git commit of dvc.lock failed: {commit.stderr.strip()}")
        out["git_commit"] = git("rev-parse", "HEAD").stdout.strip()
    return out
