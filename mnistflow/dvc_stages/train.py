"""The DVC stage ``train``: every training stage in turn, each resuming from the run's checkpoint; then model.pt."""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..session import open_session
from ..train import train_all
from .command import main
from .ready import device_and_files


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    device, files = device_and_files(params, data_root, paths)
    train_all(params, open_session(params, files, paths, device), files, paths)


if __name__ == "__main__":
    main("train", run, __doc__)
