from __future__ import annotations

from pathlib import Path

from prefect import task

from mnistflow.params import PlotParams
from mnistflow.paths import RunPaths

from . import TASK_DEFAULTS


@task(name="plot", **TASK_DEFAULTS)
def plot_task(paths: RunPaths, opts: PlotParams) -> list[Path]:
    from mnistflow.plots import make_plots  # matplotlib is only imported when plotting

    return make_plots(paths, opts)
