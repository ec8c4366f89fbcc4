"""What training and evaluation compute on: the runtime and the tensors on its device.

runtime (the device chosen once by the caller, determinism, precision) ->
the recorded split's tensors on that device. The DVC stages, the benchmarks
and the tests open one with ``open_session`` and hand it to
``train.train_all`` or ``evaluate.evaluate``; the Prefect flow
(flows/pipeline.py) calls its own tasks for the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from .device import DeviceChoice, Runtime, configure_runtime
from .dataset_files import DatasetFiles
from .params import Params
from .paths import RunPaths
from .tensors import DeviceData, load_device_data


@dataclass
class Session:
    runtime: Runtime
    data: DeviceData


def open_session(params: Params, files: DatasetFiles, paths: RunPaths, device: DeviceChoice) -> Session:
    runtime = configure_runtime(device, params.train.threads, params.train.precision)
    return Session(runtime, load_device_data(files, paths.split, runtime.torch, params.data.normalize))
