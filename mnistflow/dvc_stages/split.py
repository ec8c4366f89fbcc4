"""The DVC stage ``split``: the seeded validation hold-out, written as indices (outputs/split.json)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..dataset_files import locate
from ..preflight import check_network_fits
from ..split import make_split
from .command import folders_writable, main

log = logging.getLogger("mnistflow")


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    folders_writable(params, data_root, paths)
    files = locate(params.data, data_root)
    check_network_fits(params, files.shape)  # a custom dataset's image size: known from its headers
    log.info("split recorded in %s", make_split(files, params.data, paths.split))


if __name__ == "__main__":
    main("split", run, __doc__)
