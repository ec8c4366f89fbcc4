"""The set-up every training or evaluation goes through, written once.

select the device -> pin determinism -> put the recorded split's tensors on the
device -> train each stage. The Prefect flow passes its tasks as the steps (so
each is a task run); the DVC steps, the benchmarks and the tests use the plain
functions, the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import atomic
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
    """Every training stage in turn; each resumes from the run's checkpoint. Returns it.

    How long it took goes in ``training.json`` (for the model card), apart from
    the model and metrics so that their bytes stay the same from run to run. A
    run that found training finished leaves the record of the run that trained.
    """
    before = atomic.stamp(paths.model)
    started = time.perf_counter()
    for index in range(len(params.train.stages)):
        checkpoint = steps.train_stage(params, session.data, session.device.torch, files.digest, index, paths,
                                       device_reason=session.device.reason, **stage_options)
    if atomic.stamp(paths.model) != before or not paths.training.exists():
        atomic.write_json(paths.training, {"seconds": round(time.perf_counter() - started, 3),
                                           "device": session.device.name, "reason": session.device.reason})
    return checkpoint

