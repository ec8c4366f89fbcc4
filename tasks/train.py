"""The train-stage task, and the progress artifact it moves forward every epoch."""

from __future__ import annotations

import contextvars
import logging
import threading
from pathlib import Path
from typing import Callable
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from mnistflow.dataset_files import DatasetFiles
from mnistflow.device import Runtime
from mnistflow.params import Params
from mnistflow.paths import RunPaths
from mnistflow.tensors import DeviceData
from mnistflow.train import EpochReport, format_progress, train_stage
from mnistflow.starting_point import WarmStart

from . import TASK_DEFAULTS, best_effort, retry_unless_user_error


def start_progress(total_epochs: int) -> UUID | None:
    return best_effort("the training-progress artifact", lambda: create_progress_artifact(
        progress=0.0, key="training-progress", description=f"Training: 0 of {total_epochs} epochs"))


# Progress is for people watching; training must never wait on it. An update
# that the API does not take within this long is given up, and so are the
# updates after it: a server gone mid-run costs the run seconds, not minutes.
PROGRESS_TIMEOUT = 5.0


class Progress:
    """The progress artifact, moved forward best-effort from the training loop."""

    def __init__(self, artifact_id: UUID | None) -> None:
        self.artifact_id, self.given_up = artifact_id, False

    def update(self, report: EpochReport) -> None:
        if self.artifact_id is None or self.given_up:
            return
        done = threading.Event()
        failure: list[BaseException] = []

        def send() -> None:
            try:
                update_progress_artifact(
                    self.artifact_id, progress=100.0 * report.epoch / report.total_epochs,
                    description=f"Training: {report.epoch} of {report.total_epochs} epochs; "
                                f"val acc {100 * report.val_accuracy:.2f}%")
            except Exception as exc:  # noqa: BLE001  whatever the API does, training goes on
                failure.append(exc)
            finally:
                done.set()

        # The thread runs in a copy of this context: the run's Prefect settings (its API URL)
        # and client live in context variables, which a bare thread does not inherit. Without
        # them, Prefect in the thread started a temporary server of its own, which outlived the run.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(send,), name="mnistflow-progress", daemon=True).start()
        if not done.wait(PROGRESS_TIMEOUT) or failure:
            self.given_up = True
            why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else f"no answer in {PROGRESS_TIMEOUT:g}s"
            logging.getLogger("mnistflow").warning("the training-progress artifact is no longer updated (%s); "
                                                   "training goes on", str(why)[:200])


def _run_name() -> str:
    from prefect.runtime import task_run

    parameters = task_run.parameters
    stage = parameters["params"].train.run_stages[parameters["stage_index"]]
    return f"train-stage-{parameters['stage_index'] + 1}-lr{stage.lr:g}"


# A retry resumes from the last epoch's checkpoint, not from epoch 0.
@task(name="train-stage", task_run_name=_run_name, retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def train_stage_task(params: Params, data: DeviceData, runtime: Runtime, files: DatasetFiles,
                     stage_index: int, paths: RunPaths, progress_artifact: UUID | None = None,
                     warm_start: WarmStart | None = None,
                     epoch_hook: Callable[[EpochReport], None] | None = None) -> Path:
    logger = get_run_logger()
    progress = Progress(progress_artifact)

    def on_epoch(report: EpochReport) -> None:
        logger.info("%s", format_progress(report))
        progress.update(report)
        if epoch_hook is not None:
            epoch_hook(report)

    return train_stage(params, data, runtime, files, stage_index, paths, on_epoch, warm_start)
