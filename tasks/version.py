from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from mnistflow.paths import RunPaths
from lifecycle.versioning import version_with_dvc

from . import TASK_DEFAULTS


def outside_workspace(paths: RunPaths) -> dict[str, Any]:
    return {"versioned": False, "why": f"run folder {paths.dir} is not a DVC workspace; dvc.lock not updated"}


@task(name="version-with-dvc", retries=2, retry_delay_seconds=5, **TASK_DEFAULTS)
def version_task(dvc_root: Path | None, paths: RunPaths, params: Params, message: str, push: bool,
                 git_commit: bool = True) -> dict[str, Any]:
    """dvc commit the run (and push it, and git-commit dvc.lock), when dvc.lock would tell the truth."""
    # DVC records its workspace and params.yaml: a run elsewhere, or with other
    # params, would make dvc.lock lie.
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
