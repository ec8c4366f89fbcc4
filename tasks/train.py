"""The train-stage task, and the progress artifact it moves forward every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import torch
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from mnistflow.params import Params
from mnistflow.paths import RunPaths
from mnistflow.tensors import DeviceData
from mnistflow.train import format_progress, train_stage

from . import TASK_DEFAULTS, retry_unless_user_error


def start_progress(total_epochs: int) -> UUID | None:
    return create_progress_artifact(progress=0.0, key="training-progress",
                                    description=f"Training: 0 of {total_epochs} epochs")


def _update_progress(artifact_id: UUID | None, row: dict[str, Any]) -> None:
    if artifact_id is None:
        return
    done, total = row["epoch"], row["total_epochs"]
    update_progress_artifact(
        artifact_id, progress=100.0 * done / total,
        description=f"Training: {done} of {total} epochs; val acc {100 * row['val_accuracy']:.2f}%")


def _run_name() -> str:
    from prefect.runtime import task_run

    parameters = task_run.parameters
    stage = parameters["params"].train.stages[parameters["stage_index"]]
    return f"train-stage-{parameters['stage_index'] + 1}-lr{stage.lr:g}"


# A retry resumes from the last epoch's checkpoint, not from epoch 0.
@task(name="train-stage", task_run_name=_run_name, retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def train_stage_task(params: Params, data: DeviceData, device: torch.device, data_digest: str,
                     stage_index: int, paths: RunPaths, device_reason: str = "",
                     progress_artifact: UUID | None = None) -> Path:
    logger = get_run_logger()

    def progress(row: dict[str, Any]) -> None:
        logger.info("%s", format_progress(row))
        _update_progress(progress_artifact, row)

    return train_stage(params, data, device, data_digest, stage_index, paths,
                       progress=progress, device_reason=device_reason)
