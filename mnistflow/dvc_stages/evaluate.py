"""The DVC stage ``evaluate``: validation and test accuracy and the per-class record (metrics.json, evaluation.json)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..evaluate import evaluate
from ..session import open_session
from .command import main
from .ready import device_and_files

log = logging.getLogger("mnistflow")


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    device, files = device_and_files(params, data_root, paths)
    session = open_session(params, files, paths, device)
    evaluation = evaluate(params, session.data, files, session.runtime, paths)
    log.info("validation accuracy %.2f%%, test accuracy %.2f%%",
             100 * evaluation["val"]["accuracy"], 100 * evaluation["test"]["accuracy"])


if __name__ == "__main__":
    main("evaluate", run, __doc__)
