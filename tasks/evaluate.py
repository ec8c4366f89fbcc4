from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from mnistflow.device import Runtime
from mnistflow.dataset_files import DatasetFiles
from mnistflow.evaluate import evaluate
from mnistflow.params import Params
from mnistflow.paths import RunPaths
from mnistflow.tensors import DeviceData

from . import TASK_DEFAULTS


@task(name="evaluate", **TASK_DEFAULTS)
def evaluate_task(params: Params, data: DeviceData, files: DatasetFiles, runtime: Runtime,
                  paths: RunPaths) -> dict[str, Any]:
    evaluation = evaluate(params, data, files, runtime, paths)
    get_run_logger().info("validation accuracy %.2f%%, test accuracy %.2f%%",
                          100 * evaluation["val"]["accuracy"], 100 * evaluation["test"]["accuracy"])
    return evaluation
