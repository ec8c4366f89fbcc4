"""The GPU path, checked on real MNIST, with no Prefect or DVC installed.

    python bench/gpu_check.py MIRROR_DIR     # the four *-ubyte.gz files

Runs the pipeline's own steps (download through the mirror, split, tensors on
the device, staged training, evaluation) on CUDA and then on the CPU, and prints the
accuracies, timings and the GPU/CPU ratio. It also checks that the data lives
on the GPU and that the training loop does not synchronise with the host per
batch: CUDA's sync debug mode counts the synchronising calls in one epoch.
Needs only torch, numpy, pyyaml and pydantic (carry pydantic's wheels where the
image lacks it: bench/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.ours import time_training  # noqa: E402
from mnistflow.download import download  # noqa: E402
from mnistflow.evaluate import evaluate  # noqa: E402
from mnistflow.params import validate  # noqa: E402
from mnistflow.paths import RunPaths  # noqa: E402
from mnistflow.session import open_session, train_all  # noqa: E402


def with_device(params, device: str):
    return validate({**params.model_dump(mode="json"), "device": device})


def run(device: str, params, files, paths: RunPaths) -> dict:
    params = with_device(params, device)
    seconds, session = time_training(params, files, paths)
    metrics = evaluate(params, session.data, files, session.device.torch, paths)
    return {"device": device, "data_device": str(session.data.train.x.device), "train_seconds": round(seconds, 3),
            "val_accuracy": metrics["val"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"]}


def syncs_per_epoch(params, files, paths: RunPaths) -> int:
    """How many host synchronisations one training epoch makes on CUDA."""
    one_epoch = validate({**with_device(params, "cuda").model_dump(mode="json"),
                          "train": {**params.train.model_dump(mode="json"), "stages": [{"epochs": 1, "lr": 0.5}]}})
    session = open_session(one_epoch, files, paths)
    paths.last_checkpoint.unlink(missing_ok=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_all(one_epoch, session, files, paths, progress=lambda row: None)
    torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main(mirror: str) -> None:
    os.environ["MNISTFLOW_MIRROR"] = str(Path(mirror).resolve())
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params = validate({})  # the default recipe
        files = download(params.data, work / "data")
        paths = RunPaths(work / "outputs")
        results = []
        if torch.cuda.is_available():
            results.append(run("cuda", params, files, paths))
            steps = -(-48_000 // params.train.batch_size)
            syncs = syncs_per_epoch(params, files, paths)
            print(f"host syncs in one CUDA training epoch of {steps} batches: {syncs} "
                  f"({'OK: none per batch' if syncs < steps // 10 else 'TOO MANY: a per-batch sync'})")
        results.append(run("cpu", params, files, paths))
    for r in results:
        print(json.dumps(r))
    if len(results) == 2:
        gpu, cpu = results
        print(f"GPU/CPU training time ratio: {gpu['train_seconds'] / cpu['train_seconds']:.3f} "
              f"(GPU {cpu['train_seconds'] / gpu['train_seconds']:.1f}x faster); test accuracy "
              f"GPU {100 * gpu['test_accuracy']:.2f}% vs CPU {100 * cpu['test_accuracy']:.2f}%")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MNISTFLOW_MIRROR", ""))
