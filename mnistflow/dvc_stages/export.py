"""The DVC stage ``export``: the trained network as ONNX, checked against PyTorch on test images."""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..dataset_files import locate
from ..export import export_onnx
from .command import folders_writable, main


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    folders_writable(params, data_root, paths)
    export_onnx(paths, locate(params.data, data_root).paths["test-images"])


if __name__ == "__main__":
    main("export", run, __doc__)
