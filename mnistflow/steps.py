"""The pipeline's steps as commands, for DVC: ``python -m mnistflow.steps STEP``.

Each DVC stage in dvc.yaml runs one step and names the folders it reads and
writes (``--data-root data --run-dir outputs``); each step reads only its own
params. The functions are the ones the Prefect tasks wrap, so the flow and
`dvc repro` write the same files, byte for byte. Nothing here imports Prefect
(it would add seconds to every stage), and the steps that need no torch do not
import it either.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import run_main, setup_logging
from .download import DatasetFiles, download, locate
from .params import Params, load_params
from .paths import DEFAULT_RUN_DIR, RunPaths, roots

log = logging.getLogger("mnistflow")


def step_download(params: Params, data_root: Path, paths: RunPaths) -> None:
    files = download(params.data, data_root)  # verifies what is there; fetches only what is missing
    log.info("dataset %s verified in %s (digest %s)", files.dataset, files.directory, files.digest[:12])


def step_split(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .split import make_split

    path = make_split(locate(params.data, data_root), params.data, paths.split)
    log.info("split recorded in %s", path)


def _session(params: Params, files: DatasetFiles, paths: RunPaths):
    from .session import open_session

    session = open_session(params, files, paths)
    log.info("device %s (%s)", session.device.name, session.device.reason)
    return session


def step_train(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .session import train_all

    files = locate(params.data, data_root)  # the download step verified them; DVC tracks their hashes
    train_all(params, _session(params, files, paths), files, paths)


def step_export(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .export import export_onnx

    export_onnx(paths, locate(params.data, data_root).paths["test-images"])


def step_evaluate(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .evaluate import evaluate

    files = locate(params.data, data_root)
    session = _session(params, files, paths)
    metrics = evaluate(params, session.data, files, session.device.torch, paths, session.determinism)
    log.info("validation accuracy %.2f%%, test accuracy %.2f%%",
             100 * metrics["val"]["accuracy"], 100 * metrics["test"]["accuracy"])


def step_plot(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .plots import make_plots

    for path in make_plots(paths, params.plot):
        log.info("wrote %s", path)


def step_card(params: Params, data_root: Path, paths: RunPaths) -> None:
    from .card import write_model_card

    log.info("wrote %s", write_model_card(params, paths))


NEEDS_TORCH = ("train", "evaluate")
# In dvc.yaml's order.
STEPS = {"download": step_download, "split": step_split, "train": step_train, "export": step_export,
         "evaluate": step_evaluate, "plot": step_plot, "card": step_card}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistflow.steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data-root", type=Path, default=None,
                        help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="the run's folder (default: outputs/)")
    args = parser.parse_args()
    setup_logging()

    def run() -> None:
        params, data_root = load_params(args.params), roots(data=args.data_root).data
        folders = [args.run_dir, data_root]
        if args.step in NEEDS_TORCH:  # device and memory too: they need torch, which the others never import
            from .preflight import preflight

            preflight(params, folders)
        else:
            from .preflight import writable

            for folder in folders:
                writable(folder)
        STEPS[args.step](params, data_root, RunPaths(args.run_dir))

    run_main(run)


if __name__ == "__main__":
    main()
