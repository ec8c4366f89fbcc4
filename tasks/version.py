from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from lifecycle.versioning import version_run
from mnistflow.params import Params
from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS, retry_unless_user_error


# Retried only for what may pass (a DVC remote that did not answer): a refused
# git commit or dvc commit would fail the same way again.
@task(name="version-with-dvc", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error,
      **TASK_DEFAULTS)
def version_task(dvc_root: Path | None, paths: RunPaths, params: Params, message: str, push: bool,
                 git_commit: bool = True) -> dict[str, Any]:
    """dvc commit the run (and push it, and git-commit dvc.lock), when dvc.lock would tell the truth."""
    return version_run(dvc_root, paths, params, message, push, git_commit)
