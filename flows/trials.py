"""A sweep's trials: each one the training flow's own task graph, in one Dask worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.dask_cluster import worker_address
from flows.pipeline import run_pipeline
from lifecycle.leaderboard import read_record, write_record
from lifecycle.registry import now
from lifecycle.sweep_spec import Trial, one_line
from mnistflow.dataset_files import DatasetFiles
from mnistflow.errors import MnistflowError
from mnistflow.paths import RunPaths
from tasks import TASK_DEFAULTS, retry_unless_user_error
from tasks.device import device_task


# One trial: run_pipeline (not a copy), inside one Dask worker, on the device that
# worker chooses (it sees only its own GPU). It takes and returns plain data and
# paths: its tensors, model and device never go through Dask's serializer. A
# completed trial is not trained again; a retry (a transient fault) or a rerun of
# an interrupted one resumes from its checkpoint, as every training stage does.
@task(name="trial", task_run_name="trial-{trial.id}", retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def trial_task(trial: Trial, run_dir: Path, data_root: Path, files: DatasetFiles) -> dict[str, Any]:
    done = read_record(run_dir)
    if done and done.get("status") == "completed" and RunPaths(run_dir).metrics.exists():
        return done
    record = {"trial": trial.id, "overrides": trial.overrides, "status": "running",
              "started_at": now(), "worker": worker_address(), "pid": os.getpid()}
    write_record(run_dir, record)
    device = device_task(trial.params.device)
    result = run_pipeline(trial.params, RunPaths(run_dir), data_root, device, files,
                          progress_artifact=False, hand_off=False, label=trial.id)
    record.update(status="completed", reason="", finished_at=now(),
                  val_accuracy=result.evaluation["val"]["accuracy"], val_loss=result.evaluation["val"]["loss"],
                  test_accuracy=result.evaluation["test"]["accuracy"], train_seconds=round(result.train_seconds, 3))
    write_record(run_dir, record)
    return record


@flow(name="mnist-sweep-trials", validate_parameters=False)
def run_trials(trials: list[Trial], sweep_dir: Path, data_root: Path, files: dict[str, Any],
               gpu: bool) -> list[dict[str, Any]]:
    """Submit every trial to the task runner (Dask); collect each one's record, failed or not."""
    import dask

    logger = get_run_logger()
    futures = {}
    for trial in trials:
        with dask.annotate(resources={"GPU": 1} if gpu else {}):
            futures[trial.id] = trial_task.submit(trial, sweep_dir / trial.id, data_root, files[trial.id])
    rows = []
    for trial in trials:
        futures[trial.id].wait()
        state = futures[trial.id].state
        run_dir = sweep_dir / trial.id
        if state.is_completed():
            rows.append(state.result())
            continue
        try:
            state.result()
            reason = f"ended {state.name}"
        except BaseException as exc:  # noqa: BLE001 (any failure of a trial is recorded, not raised)
            reason = one_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, MnistflowError) else str(exc))
        record = {**(read_record(run_dir) or {}), "trial": trial.id, "overrides": trial.overrides,
                  "status": "failed", "reason": reason}
        write_record(run_dir, record)
        logger.warning("trial %s failed: %s", trial.id, reason)
        rows.append(record)
    return rows
