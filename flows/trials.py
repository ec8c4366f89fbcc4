"""A sweep's trials: each one the training flow's own task graph, in one Dask worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from prefect import flow, get_run_logger, task

from flows.dask_cluster import worker_address
from flows.pipeline import run_pipeline
from lifecycle.leaderboard import read_record, write_record
from lifecycle.registry import now
from lifecycle.study import Pruned
from lifecycle.sweep_spec import Trial, one_line
from mnistflow.dataset_files import DatasetFiles
from mnistflow.errors import MnistflowError
from mnistflow.paths import RunPaths
from mnistflow.train import EpochReport
from tasks import TASK_DEFAULTS, retry_unless_user_error
from tasks.device import device_task


# One trial: run_pipeline (not a copy), inside one Dask worker, on the device that
# worker chooses (it sees only its own GPU). It takes and returns plain data and
# paths: its tensors, model and device never go through Dask's serializer. A
# completed trial is not trained again; a retry (a transient fault) or a rerun of
# an interrupted one resumes from its checkpoint, as every training stage does.
@task(name="trial", task_run_name="trial-{trial.id}", retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def trial_task(trial: Trial, run_dir: Path, data_root: Path, files: DatasetFiles,
               reporter: Callable[[EpochReport], None] | None = None) -> dict[str, Any]:
    """One trial; ``reporter`` (a search's) hears every epoch and may stop it (``Pruned``):
    then its record says so, and at which epoch."""
    done = read_record(run_dir)
    if done and (done.get("status") == "pruned" or done.get("status") == "completed"
                 and RunPaths(run_dir).metrics.exists()):
        return done
    record = {"trial": trial.id, "overrides": trial.overrides, "status": "running",
              "started_at": now(), "worker": worker_address(), "pid": os.getpid()}
    write_record(run_dir, record)
    device = device_task(trial.params.device)
    try:
        result = run_pipeline(trial.params, RunPaths(run_dir), data_root, device, files, progress_artifact=False,
                              hand_off=False, label=trial.id, epoch_hook=reporter)
    except Pruned as pruned:
        record.update(status="pruned", reason=str(pruned), finished_at=now(), epochs=pruned.epoch,
                      pruned_at_epoch=pruned.epoch, **{pruned.metric: pruned.value})
        write_record(run_dir, record)
        return record
    record.update(status="completed", reason="", finished_at=now(), epochs=sum(s.epochs for s in trial.params.train.run_stages),
                  val_accuracy=result.evaluation["val"]["accuracy"], val_loss=result.evaluation["val"]["loss"],
                  test_accuracy=result.evaluation["test"]["accuracy"], train_seconds=round(result.train_seconds, 3))
    write_record(run_dir, record)
    return record


def outcome(future: Any, trial: Trial, run_dir: Path) -> dict[str, Any]:
    """A finished trial's record; a failed one's written here, with its reason."""
    state = future.state
    if state.is_completed():
        return state.result()
    try:
        state.result()
        reason = f"ended {state.name}"
    except BaseException as exc:  # noqa: BLE001 (any failure of a trial is recorded, not raised)
        reason = one_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, MnistflowError) else str(exc))
    record = {**(read_record(run_dir) or {}), "trial": trial.id, "overrides": trial.overrides,
              "status": "failed", "reason": reason}
    write_record(run_dir, record)
    get_run_logger().warning("trial %s failed: %s", trial.id, reason)
    return record


@flow(name="mnist-sweep-trials", validate_parameters=False)
def run_trials(trials: list[Trial], sweep_dir: Path, data_root: Path, files: dict[str, Any],
               gpu: bool) -> list[dict[str, Any]]:
    """Submit every trial to the task runner (Dask); collect each one's record, failed or not."""
    import dask

    futures = {}
    for trial in trials:
        with dask.annotate(resources={"GPU": 1} if gpu else {}):
            futures[trial.id] = trial_task.submit(trial, sweep_dir / trial.id, data_root, files[trial.id])
    rows = []
    for trial in trials:
        futures[trial.id].wait()
        rows.append(outcome(futures[trial.id], trial, sweep_dir / trial.id))
    return rows
