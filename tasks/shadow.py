from __future__ import annotations

from typing import Any

from prefect import task

from lifecycle import shadow
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS


@task(name="install-shadow", **TASK_DEFAULTS)
def install_shadow_task(paths: RunPaths, registry_paths: RegistryPaths, record: dict[str, Any]) -> str:
    shadow.install_shadow(paths, registry_paths, record)
    return str(registry_paths.shadow_model)
