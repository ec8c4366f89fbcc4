"""The set-up every training or evaluation goes through, written once.

select the device -> pin determinism -> put the recorded split's tensors on the
device -> train each stage. The Prefect flow passes its tasks as the steps (so
each is a task run); the DVC steps, the benchmarks and the tests use the plain
functions, the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .device import DeviceChoice, select_device
from .download import DatasetFiles
from .params import Params
from .paths import RunPaths
from .tensors import DeviceData, load_device_data
from .train import configure_determinism, train_stage


@dataclass(frozen=True)
class Steps:
    select_device: Callable[[str], DeviceChoice] = select_device
    load_device_data: Callable[..., DeviceData] = load_device_data
    train_stage: Callable[..., Path] = train_stage


@dataclass
class Session:
    device: DeviceChoice
    determinism: dict[str, Any]
    data: DeviceData


def open_session(params: Params, files: DatasetFiles, paths: RunPaths, steps: Steps = Steps()) -> Session:
    device = steps.select_device(params.device)
    determinism = configure_determinism(params.train.threads, device.torch)
    data = steps.load_device_data(files, paths.split, device.torch, params.data.normalize)
    return Session(device, determinism, data)


def train_all(params: Params, session: Session, files: DatasetFiles, paths: RunPaths,
              steps: Steps = Steps(), **stage_options: Any) -> Path:
    """Every training stage in turn; each resumes from the run's checkpoint. Returns it."""
    for index in range(len(params.train.stages)):
        checkpoint = steps.train_stage(params, session.data, session.device.torch, files.digest, index, paths,
                                       device_reason=session.device.reason, **stage_options)
    return checkpoint
