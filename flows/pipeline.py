"""The pipeline's task graph, shared by the training and retraining flows.

Call ``run_pipeline`` inside a flow: each step is a task run, each training
stage its own. The whole body holds the ``mnistflow-outputs`` global
concurrency slot, because every run writes the same output folder.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from prefect import get_run_logger
from prefect.concurrency.sync import concurrency

from mnistflow.device import DeviceChoice
from mnistflow.download import DatasetFiles
from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from mnistflow.paths import Outputs
from mnistflow.train import configure_determinism
from tasks.device import device_task
from tasks.download import download_task
from tasks.evaluate import evaluate_task
from tasks.loaders import loaders_task
from tasks.plot import plot_task
from tasks.report import start_progress
from tasks.split import split_task
from tasks.train import train_stage_task

# Runs that write outputs/ take this slot one at a time; see README, "Overlapping runs".
OUTPUTS_LIMIT = "mnistflow-outputs"


@dataclass
class PipelineResult:
    files: DatasetFiles
    device: DeviceChoice
    metrics: dict[str, Any]
    plots: list[Path]


def resolve_params(params: Params | None, params_file: str) -> Params:
    return params if params is not None else load_params(params_file)


@contextlib.contextmanager
def outputs_slot() -> Iterator[None]:
    """One writer of outputs/ at a time. A limit nobody created is not enforced
    (strict=False), so a plain local run needs no set-up."""
    # A short lease: if the worker dies holding the slot, the next run waits a minute, not five.
    with concurrency(OUTPUTS_LIMIT, occupy=1, strict=False, lease_duration=60):
        yield


def run_pipeline(params: Params, files: DatasetFiles | None = None) -> PipelineResult:
    logger = get_run_logger()
    logger.info("params digest %s", params.training_digest()[:12])
    files = files or download_task(params.data)
    split_path = split_task(files, params.data)
    device = device_task(params.device)
    determinism = configure_determinism(params.train.threads, device.torch)
    splits = loaders_task(files, split_path, device, params.data.normalize)
    progress = start_progress(sum(stage.epochs for stage in params.train.stages))
    for index in range(len(params.train.stages)):
        train_stage_task(params, splits, device, files.digest, index, progress)
    metrics = evaluate_task(params, splits, files, device, determinism)
    plots = plot_task(params.plot)
    return PipelineResult(files, device, metrics, plots)


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a failed task with its traceback; for a user's mistake one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MnistflowError):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_errors() -> None:
    hide = _HideUserErrorTracebacks()
    loggers = [logging.getLogger()] + [
        logger for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("prefect") and isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            handler.addFilter(hide)


def run_from_command_line(flow_fn, prog: str, description: str, summary) -> None:
    """``python -m flows.X [--params FILE]``: validate first, run, one line on a user's error."""
    import argparse

    from mnistflow.cli import run_main

    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--heartbeat", action="store_true",
                        help="send flow-run heartbeats (off by default for a run started by hand)")
    args = parser.parse_args()

    def run() -> None:
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        params = load_params(args.params)  # a bad params file fails here, before Prefect starts
        quiet_user_errors()
        # Heartbeats let a server notice a run whose worker died (zombie detection).
        # A run started by hand has no worker to lose, and the heartbeat thread's
        # 1-second sleep delays the end of every flow run by up to a second.
        heartbeat = {} if args.heartbeat else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with temporary_settings(heartbeat):
            state = flow_fn(params=params, return_state=True)
        result = state.result()  # raises the flow's exception: MnistflowError -> one line
        print(summary(result))

    run_main(run)


def output_paths() -> dict[str, str]:
    out = Outputs()
    return {"metrics": str(out.metrics), "model": str(out.model)}
