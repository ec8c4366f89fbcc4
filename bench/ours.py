"""Our training, timed the same way as the baseline: the epochs alone (each with its
validation pass), after the data is on the device.

Usage: python -m bench.ours PARAMS_FILE NAME   (run in a scratch directory; data
through MNISTFLOW_MIRROR). Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch

from bench.warmup import warm_up_torch_optim
from mnistflow.device import select_device
from mnistflow.download import DatasetFiles, download
from mnistflow.evaluate import evaluate
from mnistflow.loaders import Splits, build_splits
from mnistflow.params import Params, load_params
from mnistflow.paths import Outputs
from mnistflow.split import make_split, read_split
from mnistflow.train import configure_determinism, train_stage


def time_training(params: Params, files: DatasetFiles, device: torch.device) -> tuple[float, Splits]:
    """Seconds of training from scratch (all stages), with the data already on the device."""
    configure_determinism(params.train.threads, device)
    train_idx, val_idx, _ = read_split(make_split(files, params.data, Outputs().split), files)
    splits = build_splits(files, train_idx, val_idx, device, params.data.normalize)
    for path in (Outputs().last_checkpoint, Outputs().model):
        path.unlink(missing_ok=True)  # time a run from scratch, never a resume
    warm_up_torch_optim()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for index in range(len(params.train.stages)):
        train_stage(params, splits, device, files.digest, index, progress=lambda row: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, splits


def main(params_file: str, name: str) -> None:
    params = load_params(params_file)
    device = select_device(params.device)
    files = download(params.data)
    seconds, splits = time_training(params, files, device.torch)
    train_idx = range(len(splits.train))
    metrics = evaluate(params, splits, files, device.torch)
    epochs = sum(stage.epochs for stage in params.train.stages)
    print(json.dumps({
        "name": name, "train_seconds": seconds, "samples_per_second": len(train_idx) * epochs / seconds,
        "val_accuracy": metrics["val"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.torch.type == "cuda" else 0.0,
        "threads": params.train.threads, "device": device.name,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
