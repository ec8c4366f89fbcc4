from __future__ import annotations

from pathlib import Path

from prefect import task

from mnistflow.dataset_files import DatasetFiles

from mnistflow.download import download
from mnistflow.params import DataParams

from . import TASK_DEFAULTS, retry_unless_user_error


@task(name="download", retries=1, retry_delay_seconds=10,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def download_task(data: DataParams, data_root: Path) -> DatasetFiles:
    """Fetch and verify the four IDX files (each mirror also retries with backoff)."""
    return download(data, data_root)
