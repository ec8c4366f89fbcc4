from __future__ import annotations

from pathlib import Path

from prefect import task

from mnistflow.card import write_model_card
from mnistflow.params import Params
from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS


@task(name="model-card", **TASK_DEFAULTS)
def card_task(params: Params, paths: RunPaths) -> Path:
    return write_model_card(params, paths)
