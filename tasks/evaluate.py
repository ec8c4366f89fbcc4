from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from mnistflow.device import DeviceChoice
from mnistflow.download import DatasetFiles
from mnistflow.evaluate import evaluate
from mnistflow.loaders import Splits
from mnistflow.params import Params

from . import TASK_DEFAULTS


@task(name="evaluate", **TASK_DEFAULTS)
def evaluate_task(params: Params, splits: Splits, files: DatasetFiles, device: DeviceChoice,
                  determinism: dict[str, Any]) -> dict[str, Any]:
    metrics = evaluate(params, splits, files, device.torch, determinism=determinism)
    get_run_logger().info("validation accuracy %.2f%%, test accuracy %.2f%%",
                          100 * metrics["val"]["accuracy"], 100 * metrics["test"]["accuracy"])
    return metrics
