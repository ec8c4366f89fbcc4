"""The DVC stage ``plot``: the plots DVC draws (curves, confusion, samples)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..plots import make_plots
from .command import folders_writable, main

log = logging.getLogger("mnistflow")


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    folders_writable(params, data_root, paths)
    for path in make_plots(paths, params.plot):
        log.info("wrote %s", path)


if __name__ == "__main__":
    main("plot", run, __doc__)
