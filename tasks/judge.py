from __future__ import annotations

from pathlib import Path

from prefect import task

from lifecycle import registry
from lifecycle.registry_paths import RegistryPaths
from mnistflow.tensors import DeviceData

from . import TASK_DEFAULTS


@task(name="judge", **TASK_DEFAULTS)
def judge_task(challenger_model: Path, registry_paths: RegistryPaths, data: DeviceData,
               margin: float) -> registry.Decision:
    """Challenger against champion on the run's own test tensors (no second device pick or load)."""
    return registry.judge(challenger_model, registry_paths, data, margin)
