"""DVC stages: ``python -m mnistflow.stages STAGE``, each reading only its params.

These are the same functions the Prefect tasks wrap, writing the same paths,
without importing Prefect (it would add seconds to every stage).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import run_main, setup_logging
from .download import DatasetFiles, download, locate
from .params import Params, load_params
from .paths import Outputs

log = logging.getLogger("mnistflow")


def _files(params: Params) -> DatasetFiles:
    return locate(params.data)  # the download stage verified them; DVC tracks their hashes


def _splits(params: Params, files: DatasetFiles, device):
    from .loaders import build_splits
    from .split import read_split

    train_idx, val_idx, _ = read_split(Outputs().split, files)
    return build_splits(files, train_idx, val_idx, device, params.data.normalize)


def stage_download(params: Params) -> None:
    files = download(params.data)  # verifies what is there; fetches only what is missing
    log.info("dataset %s verified in %s (digest %s)", files.dataset, files.directory, files.digest[:12])


def stage_split(params: Params) -> None:
    from .split import make_split

    path = make_split(_files(params), params.data, Outputs().split)
    log.info("split recorded in %s", path)


def stage_train(params: Params) -> None:
    from .device import select_device
    from .train import configure_determinism, train_stage

    files = _files(params)
    device = select_device(params.device)
    configure_determinism(params.train.threads, device.torch)
    log.info("device %s (%s)", device.name, device.reason)
    splits = _splits(params, files, device.torch)
    for index in range(len(params.train.stages)):
        train_stage(params, splits, device.torch, files.digest, index, device_reason=device.reason)


def stage_evaluate(params: Params) -> None:
    from .device import select_device
    from .evaluate import evaluate
    from .train import configure_determinism

    files = _files(params)
    device = select_device(params.device)
    determinism = configure_determinism(params.train.threads, device.torch)
    metrics = evaluate(params, _splits(params, files, device.torch), files, device.torch,
                       determinism=determinism)
    log.info("validation accuracy %.2f%%, test accuracy %.2f%%",
             100 * metrics["val"]["accuracy"], 100 * metrics["test"]["accuracy"])


def stage_plot(params: Params) -> None:
    from .plots import make_plots

    for path in make_plots(Outputs(), params.plot):
        log.info("wrote %s", path)


STAGES = {"download": stage_download, "split": stage_split, "train": stage_train,
          "evaluate": stage_evaluate, "plot": stage_plot}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistflow.stages", description=__doc__)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    setup_logging()
    run_main(lambda: STAGES[args.stage](load_params(args.params)))


if __name__ == "__main__":
    main()
