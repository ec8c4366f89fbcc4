"""Version a run with DVC and git: `dvc commit`, `dvc push`, and a git commit of dvc.lock.

Runs in the repository whose ``outputs/`` the run wrote (DVC records the
workspace). It goes through DVC's Python API under the locks the run already
holds (lifecycle.workspace), so no `dvc repro` can slip in between the run's
last write and its commit.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

from mnistflow.errors import MnistflowError
from .workspace import dvc_lock, held_repo


def version_with_dvc(root: Path, message: str, push: bool = True, git_commit: bool = True) -> dict[str, Any]:
    """Record the run's data, checkpoint and metrics in dvc.lock and the DVC cache,
    push them to the default remote (``push``), and commit dvc.lock to git (``git_commit``)."""
    from dvc.exceptions import DvcException

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
                raise MnistflowError(f"dvc {step} failed: {str(exc).strip().splitlines()[0]}") from None
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
