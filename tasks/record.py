from __future__ import annotations

from typing import Any

from prefect import task

from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths

from . import TASK_DEFAULTS


@task(name="record", **TASK_DEFAULTS)
def record_task(registry_paths: RegistryPaths, record: dict[str, Any]) -> str:
    return str(registry.write_run_record(registry_paths, record))
