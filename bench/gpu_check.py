"""The GPU path, checked on real MNIST, with no Prefect or DVC installed.

    python bench/gpu_check.py MIRROR_DIR     # the four *-ubyte.gz files

Runs the pipeline's own steps (download through the mirror, split, tensors on
the device, staged training, evaluation) on CUDA and then on the CPU, for the
default recipe and the CNN presets (both small-batch recipes also with
``train.compile: reduce-overhead``, CUDA graphs, and cnn-fast with bf16 autocast
and with torch.compile), then cnn-fast over 5 seeds on CUDA (bench.accuracy's
distribution), and prints the accuracies, timings and GPU/CPU ratios. It also
checks that the data lives on the GPU and that the training loop does not
synchronise with the host per batch: CUDA's sync debug mode counts the
synchronising calls in one epoch.
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

from bench.accuracy import over_seeds, report  # noqa: E402
from bench.ours import time_training  # noqa: E402
from mnistflow.download import download  # noqa: E402
from mnistflow.evaluate import evaluate  # noqa: E402
from mnistflow.params import load_params, validate  # noqa: E402
from mnistflow.paths import RunPaths  # noqa: E402
from mnistflow.device import select_device  # noqa: E402
from mnistflow.session import open_session  # noqa: E402
from mnistflow.train import quiet, train_all  # noqa: E402


REPO = Path(__file__).resolve().parent.parent
RECIPES = {"default": REPO / "params.yaml", "cnn-fast": REPO / "presets/cnn-fast.yaml",
           "cnn-best": REPO / "presets/cnn-best.yaml"}
# What else each recipe is trained with on CUDA: CUDA graphs where a step is
# launch-bound (the 784-32-10 MLP's, cnn-fast's), bf16, the default compile.
VARIANTS = {"default": ({"compile": "reduce-overhead"},),
            "cnn-fast": ({"precision": "bf16"}, {"compile": True}, {"compile": "reduce-overhead"},
                         {"compile": "reduce-overhead", "precision": "bf16"})}
SEEDS = 5


def changed(params, device: str, **train):
    raw = params.model_dump(mode="json")
    return validate({**raw, "device": device, "train": {**raw["train"], **train}})


def run(name: str, device: str, params, files, paths: RunPaths, **train) -> dict:
    params = changed(params, device, **train)
    seconds, session = time_training(params, files, paths)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    variant = ", ".join(f"{k}={v}" for k, v in train.items())
    return {"recipe": name + (f" ({variant})" if variant else ""), "device": device,
            "data_device": str(session.data.train.x.device), "train_seconds": round(seconds, 3),
            "val_accuracy": metrics["val"]["accuracy"], "test_accuracy": metrics["test"]["accuracy"]}


def syncs_per_epoch(params, files, paths: RunPaths) -> int:
    """How many host synchronisations one training epoch makes on CUDA."""
    first = params.train.stages[0].model_dump(mode="json")
    one_epoch = changed(params, "cuda", stages=[{**first, "epochs": 1}])
    session = open_session(one_epoch, files, paths, select_device(one_epoch.device))
    paths.last_checkpoint.unlink(missing_ok=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_all(one_epoch, session, files, paths, on_epoch=quiet)
    torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def main(mirror: str) -> None:
    os.environ["MNISTFLOW_MIRROR"] = str(Path(mirror).resolve())
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    cuda = torch.cuda.is_available()
    gpu, cpu = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, path in RECIPES.items():
            params = load_params(path)
            files = download(params.data, work / "data")
            paths = RunPaths(work / name)
            if cuda:
                gpu[name] = run(name, "cuda", params, files, paths)
                print(json.dumps(gpu[name]), flush=True)
                steps = -(-48_000 // params.train.batch_size)
                syncs = syncs_per_epoch(params, files, paths)
                print(f"{name}: host syncs in one CUDA training epoch of {steps} batches: {syncs} "
                      f"({'OK: none per batch' if syncs < steps // 10 else 'TOO MANY: a per-batch sync'})")
                for variant in VARIANTS.get(name, ()):
                    print(json.dumps(run(name, "cuda", params, files, paths, **variant)), flush=True)
            if name != "cnn-best":  # a GPU session's minutes are few; bench.speed times cnn-best on a CPU
                cpu[name] = run(name, "cpu", params, files, paths)
                print(json.dumps(cpu[name]), flush=True)
    for name in gpu.keys() & cpu.keys():
        g, c = gpu[name], cpu[name]
        print(f"{name}: GPU/CPU training time ratio {g['train_seconds'] / c['train_seconds']:.3f} "
              f"(GPU {c['train_seconds'] / g['train_seconds']:.1f}x faster); test accuracy "
              f"GPU {100 * g['test_accuracy']:.2f}% vs CPU {100 * c['test_accuracy']:.2f}%")
    if "cnn-fast" in gpu:
        params = changed(load_params(RECIPES["cnn-fast"]), "cuda")
        with tempfile.TemporaryDirectory() as tmp:
            files = download(params.data, Path(tmp) / "data")
            report("cnn-fast (cuda)", params, over_seeds(params, files, Path(tmp), SEEDS), None)
        fast = gpu["cnn-fast"]
        print(f"cnn-fast on the GPU: {100 * fast['test_accuracy']:.2f}% test in {fast['train_seconds']:.2f}s "
              f"of training (target: >= 99.0% in under 2 s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MNISTFLOW_MIRROR", ""))
