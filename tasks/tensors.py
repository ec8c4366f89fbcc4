from __future__ import annotations

from pathlib import Path

import torch
from prefect import task

from mnistflow.dataset_files import DatasetFiles
from mnistflow.tensors import DeviceData, load_device_data

from . import TASK_DEFAULTS


@task(name="tensors-to-device", **TASK_DEFAULTS)
def tensors_task(files: DatasetFiles, split_path: Path, device: torch.device, normalize: bool) -> DeviceData:
    """Decode the IDX files once into device tensors (kept in memory, never persisted)."""
    return load_device_data(files, split_path, device, normalize)
