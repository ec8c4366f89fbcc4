"""One sweep trial: the training flow's own tasks, run in one Dask worker process.

The trial's tensors, model and device never leave the worker: the task takes
and returns plain data and paths (Dask's serializer never sees a tensor). A
trial already completed (its ``trial.json`` says so) is not trained again; an
interrupted one resumes from its own checkpoint, as every training stage does.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import task

from mnistflow import atomic
from mnistflow.download import DatasetFiles
from mnistflow.paths import RunPaths
from mnistflow.sweep import Trial

from . import TASK_DEFAULTS, retry_unless_user_error

RECORD = "trial.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _worker() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    atomic.write_json(Path(run_dir) / RECORD, record)


# A retry (a transient fault) resumes from the trial's last checkpoint.
@task(name="trial", task_run_name="trial-{trial.id}", retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def trial_task(trial: Trial, run_dir: Path, files: DatasetFiles) -> dict[str, Any]:
    from flows.pipeline import run_pipeline  # the training flow's task graph, not a copy

    done = read_record(run_dir)
    if done and done.get("status") == "completed" and RunPaths(run_dir).metrics.exists():
        return done
    record = {"trial": trial.id, "overrides": trial.overrides, "status": "running",
              "started_at": _now(), "worker": _worker(), "pid": os.getpid()}
    write_record(run_dir, record)
    result = run_pipeline(trial.params, RunPaths(run_dir), Path(files.directory).parent, files,
                          progress_artifact=False)
    record.update(status="completed", reason="", finished_at=_now(),
                  val_accuracy=result.metrics["val"]["accuracy"], val_loss=result.metrics["val"]["loss"],
                  test_accuracy=result.metrics["test"]["accuracy"], train_seconds=round(result.train_seconds, 3))
    write_record(run_dir, record)
    return record
