"""The DVC stage ``card``: the model card (outputs/MODEL_CARD.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..params import Params
from ..paths import RunPaths
from ..card import write_model_card
from .command import folders_writable, main

log = logging.getLogger("mnistflow")


def run(params: Params, data_root: Path, paths: RunPaths) -> None:
    folders_writable(params, data_root, paths)
    log.info("wrote %s", write_model_card(params, paths))


if __name__ == "__main__":
    main("card", run, __doc__)
