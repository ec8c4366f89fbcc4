"""What the DVC stages that compute (train, evaluate) check before their work:
the device and the verified data."""

from __future__ import annotations

from pathlib import Path

from ..dataset_files import DatasetFiles, locate
from ..device import DeviceChoice, select_device
from ..params import Params
from ..paths import RunPaths
from ..preflight import check_fits_data, preflight


def device_and_files(params: Params, data_root: Path, paths: RunPaths) -> tuple[DeviceChoice, DatasetFiles]:
    """The device, chosen once (the memory check and the computation get the same one),
    and the data the download stage verified, checked against the params."""
    device = select_device(params.device)
    preflight(params, [paths.dir], device, data_root=data_root)  # before anything, the data included, is read
    files = locate(params.data, data_root)  # the download stage verified them; DVC tracks their hashes
    check_fits_data(params, device, files.shape)  # a custom dataset's sizes: from its headers
    return device, files
