"""The training flow: download -> split -> device -> loaders -> stages -> evaluate -> plot.

Run it directly from the repository root::

    python -m flows.training                 # on params.yaml
    python -m flows.training --params other.yaml

or as a deployment entrypoint (``flows/training.py:training``); its typed
``params`` argument is the params.yaml schema, shown as a form in the Prefect UI.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from mnistflow.paths import Outputs
from mnistflow.train import configure_determinism
from tasks.device import device_task
from tasks.download import download_task
from tasks.evaluate import evaluate_task
from tasks.loaders import loaders_task
from tasks.plot import plot_task
from tasks.split import split_task
from tasks.train import train_stage_task


@flow(name="mnist-training", log_prints=True)
def training(params: Params | None = None, params_file: str = "params.yaml") -> dict[str, Any]:
    """Train and evaluate a feed-forward network; returns the headline metrics and output paths.

    ``params`` overrides ``params_file`` (params.yaml) when given.
    """
    params = params if params is not None else load_params(params_file)
    logger = get_run_logger()
    logger.info("params digest %s", params.training_digest()[:12])
    determinism = configure_determinism(params.train.threads)

    files = download_task(params.data)
    split_path = split_task(files, params.data)
    device = device_task(params.device)
    splits = loaders_task(files, split_path, device, params.data.normalize)
    for index in range(len(params.train.stages)):
        train_stage_task(params, splits, device, files.digest, index)
    metrics = evaluate_task(params, splits, files, device, determinism)
    plots = plot_task(params.plot)

    outputs = Outputs()
    return {
        "val_accuracy": metrics["val"]["accuracy"],
        "test_accuracy": metrics["test"]["accuracy"],
        "device": device.name,
        "metrics": str(outputs.metrics),
        "model": str(outputs.model),
        "plots": [str(p) for p in plots],
    }


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a failed task with its traceback; for a user's mistake one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, MnistflowError):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_user_errors() -> None:
    hide = _HideUserErrorTracebacks()
    loggers = [logging.getLogger()] + [
        logger for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("prefect") and isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            handler.addFilter(hide)


def main() -> None:
    from mnistflow.cli import run_main

    parser = argparse.ArgumentParser(prog="python -m flows.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    def run() -> None:
        params = load_params(args.params)  # a bad params file fails here, before Prefect starts
        _quiet_user_errors()
        state = training(params=params, return_state=True)
        if state.is_failed():
            try:
                state.result()
            except MnistflowError:
                raise
            except Exception as exc:  # a bug: keep the traceback
                raise exc
        result = state.result()
        print(f"validation accuracy {100 * result['val_accuracy']:.2f}%, "
              f"test accuracy {100 * result['test_accuracy']:.2f}%; outputs in {Outputs().dir}/")

    run_main(run)


if __name__ == "__main__":
    main()
