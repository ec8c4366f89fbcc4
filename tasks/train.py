"""The train-stage task, and the progress artifact it moves forward every epoch."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from mnistflow.device import Runtime
from mnistflow.params import Params
from mnistflow.paths import RunPaths
from mnistflow.tensors import DeviceData
from mnistflow.train import EpochReport, WarmStart, format_progress, train_stage

from . import TASK_DEFAULTS, retry_unless_user_error


def start_progress(total_epochs: int) -> UUID | None:
    return create_progress_artifact(progress=0.0, key="training-progress",
                                    description=f"Training: 0 of {total_epochs} epochs")


def _update_progress(artifact_id: UUID | None, report: EpochReport) -> None:
    if artifact_id is None:
        return
    update_progress_artifact(
        artifact_id, progress=100.0 * report.epoch / report.total_epochs,
        description=f"Training: {report.epoch} of {report.total_epochs} epochs; "
                    f"val acc {100 * report.val_accuracy:.2f}%")


def _run_name() -> str:
    from prefect.runtime import task_run

    parameters = task_run.parameters
    stage = parameters["params"].train.run_stages[parameters["stage_index"]]
    return f"train-stage-{parameters['stage_index'] + 1}-lr{stage.lr:g}"


# A retry resumes from the last epoch's checkpoint, not from epoch 0.
@task(name="train-stage", task_run_name=_run_name, retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def train_stage_task(params: Params, data: DeviceData, runtime: Runtime, data_digest: str,
                     stage_index: int, paths: RunPaths, progress_artifact: UUID | None = None,
                     warm_start: WarmStart | None = None) -> Path:
    logger = get_run_logger()

    def on_epoch(report: EpochReport) -> None:
        logger.info("%s", format_progress(report))
        _update_progress(progress_artifact, report)

    return train_stage(params, data, runtime, data_digest, stage_index, paths, on_epoch, warm_start)
