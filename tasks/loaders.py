from __future__ import annotations

from pathlib import Path

from prefect import task

from mnistflow.device import DeviceChoice
from mnistflow.download import DatasetFiles
from mnistflow.loaders import Splits, build_splits
from mnistflow.split import read_split

from . import TASK_DEFAULTS


@task(name="build-loaders", **TASK_DEFAULTS)
def loaders_task(files: DatasetFiles, split_path: Path, device: DeviceChoice, normalize: bool) -> Splits:
    """Decode the IDX files once into device tensors (kept in memory, never persisted)."""
    train_idx, val_idx, _ = read_split(split_path, files)
    return build_splits(files, train_idx, val_idx, device.torch, normalize)
