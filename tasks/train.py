from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task

from mnistflow.device import DeviceChoice
from mnistflow.loaders import Splits
from mnistflow.params import Params
from mnistflow.train import format_progress, train_stage

from . import TASK_DEFAULTS, retry_unless_user_error
from .report import update_progress


def _stage_name(parameters: dict[str, Any]) -> str:
    stage = parameters["params"].train.stages[parameters["stage_index"]]
    return f"train-stage-{parameters['stage_index'] + 1}-lr{stage.lr:g}"


# A retry resumes from the last epoch's checkpoint, not from epoch 0.
@task(name="train-stage", task_run_name=lambda: _run_name(), retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def train_stage_task(params: Params, splits: Splits, device: DeviceChoice, data_digest: str,
                     stage_index: int, progress_artifact: UUID | None = None) -> Path:
    logger = get_run_logger()

    def progress(row: dict[str, Any]) -> None:
        logger.info("%s", format_progress(row))
        update_progress(progress_artifact, row)

    return train_stage(params, splits, device.torch, data_digest, stage_index,
                       progress=progress, device_reason=device.reason)


def _run_name() -> str:
    from prefect.runtime import task_run

    return _stage_name(task_run.parameters)
