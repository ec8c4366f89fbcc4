from __future__ import annotations

from pathlib import Path

from prefect import task

from mnistflow.dataset_files import DatasetFiles
from mnistflow.params import DataParams
from mnistflow.split import make_split

from . import TASK_DEFAULTS


@task(name="split", **TASK_DEFAULTS)
def split_task(files: DatasetFiles, data: DataParams, path: Path) -> Path:
    """Record the seeded train/validation split at ``path``; returns it."""
    return make_split(files, data, path)
