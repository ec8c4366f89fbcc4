"""The DVC stages' command line: ``python -m mnistflow.stages STAGE``.

Each stage in dvc.yaml runs one of these and names the folders it reads and
writes (``--data-root data --run-dir outputs``); each reads only its own
params. The functions they call are the ones the Prefect tasks wrap, so the
flow and `dvc repro` write the same files, byte for byte. Nothing here imports
Prefect (it would add seconds to every stage), and the stages that need no
torch do not import it either. A stage's code, for DVC, is what its
``stage_<name>`` function reaches through its imports (mnistflow/code.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .entry import run_main, setup_logging
from .params import Params, load_params
from .paths import DEFAULT_RUN_DIR, RunPaths, roots

log = logging.getLogger("mnistflow")


def _folders_writable(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .preflight import check_data_root, writable

    writable(paths.dir)
    check_data_root(params.data, data_root)


def _device_checked(params: Params, data_root: Path, paths: RunPaths):
    """The device, chosen once (the memory check and the computation get the same one),
    and the data the download step verified, checked against the params."""
    from .device import select_device
    from .dataset_files import locate
    from .preflight import check_fits_data, preflight

    device = select_device(params.device)
    preflight(params, [paths.dir], device, data_root=data_root)  # before anything, the data included, is read
    files = locate(params.data, data_root)  # the download stage verified them; DVC tracks their hashes
    check_fits_data(params, device, files.shape)  # a custom dataset's sizes: from its headers
    return device, files


def stage_download(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .download import download

    _folders_writable(params, data_root, paths)
    files = download(params.data, data_root)  # verifies what is there; fetches only what is missing
    log.info("dataset %s verified in %s (digest %s)", files.dataset, files.directory, files.digest[:12])


def stage_split(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .dataset_files import locate
    from .preflight import check_network_fits
    from .split import make_split

    _folders_writable(params, data_root, paths)
    files = locate(params.data, data_root)
    check_network_fits(params, files.shape)  # a custom dataset's image size: known from its headers
    path = make_split(files, params.data, paths.split)
    log.info("split recorded in %s", path)


def stage_train(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .session import open_session
    from .train import train_all

    device, files = _device_checked(params, data_root, paths)
    train_all(params, open_session(params, files, paths, device), files, paths)


def stage_export(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .dataset_files import locate
    from .export import export_onnx

    _folders_writable(params, data_root, paths)
    export_onnx(paths, locate(params.data, data_root).paths["test-images"])


def stage_evaluate(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .evaluate import evaluate
    from .session import open_session

    device, files = _device_checked(params, data_root, paths)
    session = open_session(params, files, paths, device)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    log.info("validation accuracy %.2f%%, test accuracy %.2f%%",
             100 * metrics["val"]["accuracy"], 100 * metrics["test"]["accuracy"])


def stage_plot(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .plots import make_plots

    _folders_writable(params, data_root, paths)
    for path in make_plots(paths, params.plot):
        log.info("wrote %s", path)


def stage_card(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .card import write_model_card

    _folders_writable(params, data_root, paths)
    log.info("wrote %s", write_model_card(params, paths))


# In dvc.yaml's order.
STAGES = {"download": stage_download, "split": stage_split, "train": stage_train, "export": stage_export,
          "evaluate": stage_evaluate, "plot": stage_plot, "card": stage_card}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistflow.stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data-root", type=Path, default=None,
                        help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="the run's folder (default: outputs/)")
    args = parser.parse_args()
    setup_logging()

    def run() -> None:
        from .preflight import check_run_folder

        params, where = load_params(args.params), roots(data=args.data_root)
        check_run_folder(args.run_dir, where.data, where.registry)
        STAGES[args.stage](params, where.data, RunPaths(args.run_dir))

    run_main(run)


if __name__ == "__main__":
    main()
