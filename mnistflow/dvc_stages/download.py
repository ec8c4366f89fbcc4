"""The DVC stage ``download``: fetch the dataset (or take it from a mirror) and verify it against the params' checksums."""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..download import download
from .command import folders_writable, main

log = logging.getLogger("mnistflow")


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    folders_writable(params, data_root, paths)
    files = download(params.data, data_root)  # verifies what is there; fetches only what is missing
    log.info("dataset %s verified in %s (digest %s)", files.dataset, files.directory, files.digest[:12])


if __name__ == "__main__":
    main("download", run, __doc__)
