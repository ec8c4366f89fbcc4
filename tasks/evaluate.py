from __future__ import annotations

from typing import Any

import torch
from prefect import get_run_logger, task

from mnistflow.download import DatasetFiles
from mnistflow.evaluate import evaluate
from mnistflow.params import Params
from mnistflow.paths import RunPaths
from mnistflow.tensors import DeviceData

from . import TASK_DEFAULTS


@task(name="evaluate", **TASK_DEFAULTS)
def evaluate_task(params: Params, data: DeviceData, files: DatasetFiles, device: torch.device,
                  paths: RunPaths, determinism: dict[str, Any]) -> dict[str, Any]:
    metrics = evaluate(params, data, files, device, paths, determinism)
    get_run_logger().info("validation accuracy %.2f%%, test accuracy %.2f%%",
                          100 * metrics["val"]["accuracy"], 100 * metrics["test"]["accuracy"])
    return metrics
