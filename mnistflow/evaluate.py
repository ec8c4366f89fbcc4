"""Step 6: final loss and accuracy on validation and test, per class, and the confusion matrix."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np
import torch

from models import load_model

from . import __version__, atomic
from .datasets import DATASETS
from .download import DatasetFiles
from .errors import MnistflowError
from .loaders import Splits
from .params import Params
from .paths import Outputs
from .train import evaluate_split


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


def evaluate(params: Params, splits: Splits, files: DatasetFiles, device: torch.device,
             outputs: Outputs = Outputs(), determinism: dict[str, Any] | None = None) -> dict[str, Any]:
    model, info = load_model(outputs.model)
    if info.get("data_digest") != files.digest or info.get("training_digest") != params.training_digest():
        raise MnistflowError(f"{outputs.model}: trained with other params or data; run training first")
    model.to(device)
    names = class_names(params)
    val_loss, val_acc, _ = evaluate_split(model, splits.val)
    test_loss, test_acc, predicted = evaluate_split(model, splits.test)
    actual = splits.test.y.cpu().numpy()
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
        "device": {"name": info.get("device", str(device)), "reason": info.get("device_reason", "")},
        "params_digest": params.training_digest(),
        "dataset": {"name": files.dataset, "digest": files.digest, "train_size": len(splits.train),
                    "val_size": len(splits.val), "test_size": len(splits.test)},
        "determinism": determinism or {},
        "versions": library_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "implementation": sys.implementation.name},
    }
    atomic.write_json(outputs.metrics, metrics)
    # One row per test image, the shape `dvc plots` wants for its confusion template.
    rows = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in zip(actual, predicted)]
    atomic.write_text(outputs.predictions, "\n".join(rows) + "\n")
    return metrics
