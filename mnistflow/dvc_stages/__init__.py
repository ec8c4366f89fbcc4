"""The DVC stages: ``python -m mnistflow.dvc_stages.<name>``, one module each.

Each stage in dvc.yaml runs one of these modules and names the folders it reads
and writes (``--data-root data --run-dir outputs``); each reads only its own
params. The functions they call are the ones the Prefect tasks wrap, so the flow
and `dvc repro` write the same files, byte for byte. A stage's code, for DVC, is
its module and what that imports (mnistflow/code.py): one module per stage, so an
edit to the plot stage is not the train stage's business.

(In this project "stage" alone is a training stage, one entry of params'
``train.stages``; a DVC stage is always called one.)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..params import Params
    from ..paths import RunPaths

# In dvc.yaml's order.
DVC_STAGES = ("download", "split", "train", "export", "evaluate", "plot", "card")


def run_dvc_stage(name: str, params: Params, data_root: Path, paths: RunPaths) -> None:
    """What ``python -m mnistflow.dvc_stages.<name>`` does after its command line, in this process."""
    if name not in DVC_STAGES:
        raise KeyError(f"no DVC stage {name!r}")
    importlib.import_module(f"{__name__}.{name}").run(params, data_root, paths)
