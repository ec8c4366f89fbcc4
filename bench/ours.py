"""Our training, timed the same way as the baseline: the epochs alone (each with its
validation pass), after the data is on the device.

Usage: python -m bench.ours PARAMS_FILE NAME WORK_DIR   (data through MNISTFLOW_MIRROR,
verified into WORK_DIR/data, the run in WORK_DIR/outputs). Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch

from mnistflow.device import select_device
from mnistflow.dataset_files import DatasetFiles
from mnistflow.download import download
from mnistflow.evaluate import evaluate
from mnistflow.params import Params, load_params
from mnistflow.paths import RunPaths
from mnistflow.session import Session, open_session
from mnistflow.split import make_split
from mnistflow.starting_point import WarmStart
from mnistflow.train import quiet, train_all, warm_up_optimizers


def time_training(params: Params, files: DatasetFiles, paths: RunPaths,
                  warm_start: WarmStart | None = None) -> tuple[float, Session]:
    """Seconds of training (all stages, from scratch or from ``warm_start``), with the data already on the device."""
    make_split(files, params.data, paths.split)
    session = open_session(params, files, paths, select_device(params.device))
    for path in (paths.last_checkpoint, paths.model):
        path.unlink(missing_ok=True)  # time a run from scratch, never a resume
    warm_up_optimizers()
    cuda = session.runtime.torch.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    train_all(params, session, files, paths, on_epoch=quiet, warm_start=warm_start)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started, session


def main(params_file: str, name: str, work: Path) -> None:
    params = load_params(params_file)
    paths = RunPaths(work / "outputs")
    files = download(params.data, work / "data")
    seconds, session = time_training(params, files, paths)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    epochs = sum(stage.epochs for stage in params.train.run_stages)
    print(json.dumps({
        "name": name, "train_seconds": seconds,
        "samples_per_second": len(session.data.train) * epochs / seconds,
        "val_accuracy": metrics["val"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if session.runtime.torch.type == "cuda" else 0.0,
        "threads": params.train.threads, "device": session.runtime.device.name,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
