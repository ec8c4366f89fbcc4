"""Step 6: final loss and accuracy on validation and test, per class, and the confusion matrix.

``evaluate_tensors`` is also what training calls after every epoch for its
validation figures, so both report the same numbers the same way.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__, atomic
from .checkpoints import load_model
from .datasets import DATASETS
from .download import DatasetFiles
from .errors import MnistflowError
from .export import recorded_check
from .params import EVALUATION_CHUNK, Params
from .paths import RunPaths
from .tensors import DeviceData, LabelledTensors, batches


@torch.no_grad()
def evaluate_tensors(model: nn.Module, tensors: LabelledTensors, chunk: int = EVALUATION_CHUNK
                     ) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the predictions; one host sync at the end.

    Chunks of 1000 keep a CNN's feature maps in cache: twice as fast on a CPU
    as 10,000 at a time, and no slower for an MLP.
    """
    model.eval()
    loss_sum = torch.zeros((), device=tensors.x.device)
    predictions = []
    for x, y in batches(tensors, chunk):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        predictions.append(logits.argmax(1))
    predicted = torch.cat(predictions)
    correct = (predicted == tensors.y).sum()
    loss, correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return loss / len(tensors), correct / len(tensors), predicted


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "mnistflow": __version__, "torch": torch.__version__,
                "numpy": np.__version__}
    for name in ("prefect", "dvc"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def class_names(params: Params) -> list[str]:
    spec = DATASETS.get(params.data.dataset)
    return list(spec.classes) if spec else [str(i) for i in range(10)]


def evaluate(params: Params, data: DeviceData, files: DatasetFiles, device: torch.device,
             paths: RunPaths, determinism: dict[str, Any] | None = None) -> dict[str, Any]:
    model, info = load_model(paths.model)
    model_sha256 = atomic.sha256_of(paths.model)
    if info.get("data_digest") != files.digest or info.get("params_digest") != params.digest():
        raise MnistflowError(f"{paths.model}: trained with other params or data; run training first")
    model.to(device)
    names = class_names(params)
    val_loss, val_acc, _ = evaluate_tensors(model, data.val)
    test_loss, test_acc, predicted = evaluate_tensors(model, data.test)
    actual = data.test.y.cpu().numpy()
    predicted = predicted.cpu().numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    metrics = {
        "val": {"accuracy": val_acc, "loss": val_loss},
        "test": {"accuracy": test_acc, "loss": test_loss,
                 "per_class_accuracy": {names[i]: float(per_class[i]) for i in range(10)}},
        "confusion_matrix": {"labels": names, "rows_are": "actual", "matrix": confusion.tolist()},
        "epochs": info["epochs"],
        "architecture": info["architecture"],
        "model": {"file": paths.model.name, "sha256": model_sha256},
        # The ONNX export's check against PyTorch (mnistflow.export), when this model was exported.
        "onnx": recorded_check(paths, model_sha256),
        "device": {"name": info.get("device", str(device)), "reason": info.get("device_reason", "")},
        "params_digest": params.digest(),
        "dataset": {"name": files.dataset, "digest": files.digest, "train_size": len(data.train),
                    "val_size": len(data.val), "test_size": len(data.test)},
        "determinism": determinism or {},
        "versions": library_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "implementation": sys.implementation.name},
    }
    atomic.write_json(paths.metrics, metrics)
    # One row per test image, the shape `dvc plots` wants for its confusion template.
    rows = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in zip(actual, predicted)]
    atomic.write_text(paths.predictions, "\n".join(rows) + "\n")
    return metrics
