from __future__ import annotations

from typing import Any

from prefect import task

from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS


@task(name="promote", **TASK_DEFAULTS)
def promote_task(paths: RunPaths, registry_paths: RegistryPaths, record: dict[str, Any]) -> str:
    return str(registry.promote(paths, registry_paths, record))
