from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS


@task(name="export-onnx", **TASK_DEFAULTS)
def export_task(paths: RunPaths, test_images: Path) -> dict[str, Any] | None:
    from mnistflow.export import export_onnx, onnx_missing

    missing = onnx_missing()
    if missing:  # an install without the extra still trains; dvc repro's export stage insists
        get_run_logger().info("no model.onnx: %s", missing)
        return None
    return export_onnx(paths, test_images)
