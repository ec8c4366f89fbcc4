"""The evaluate step: final loss and accuracy on validation and test, per class, the
confusion matrix, the ONNX export's check, and how plausible the model finds labels
(mnistflow.label_scores: intake's threshold, and MNIST's known test-label errors).

``metrics.json`` (DVC's evaluation: `dvc evaluation show`, `dvc exp show`) holds the
few numbers people compare, accuracy and loss; ``evaluation.json`` the whole
record, which the model card, the plots and the service read.

The measure itself is ``mnistflow.scoring``'s, the one training uses every epoch.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np
import torch

from . import __version__, atomic
from .checkpoints import load_model
from .datasets import class_labels
from .device import Runtime
from .dataset_files import DatasetFiles
from .errors import MnistflowError
from .export import recorded_check
from .params import Params
from .paths import RunPaths
from .label_scores import label_scores, probabilities
from .profile import profile
from .scoring import evaluate_tensors
from .tensors import DeviceData


def comparable(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The numbers people compare across runs, from the whole evaluation record:
    validation, test, and "recent" (the increments' validation part) when there is data added."""
    return {split: {"accuracy": evaluation[split]["accuracy"], "loss": evaluation[split]["loss"]}
            for split in ("val", "test", "recent") if split in evaluation}


def recent_slice(model: torch.nn.Module, data: DeviceData) -> dict[str, Any] | None:
    """Accuracy on the added data's validation part; None with no increments, and a
    null accuracy when none of their items was held out."""
    if data.recent is None:
        return None
    if not len(data.recent):
        return {"accuracy": None, "loss": None, "size": 0}
    loss, accuracy, _ = evaluate_tensors(model, data.recent)
    return {"accuracy": accuracy, "loss": loss, "size": len(data.recent)}


def validation_profile(val_probabilities: np.ndarray, data: DeviceData, names: list[str]) -> dict[str, Any]:
    """What the model sees and says on the validation set: the baseline of the service's drift check."""
    pixels = (data.val.x * data.std + data.mean).reshape(len(data.val), *data.shape)
    return profile(pixels.cpu().numpy(), val_probabilities, names)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "mnistflow": __version__, "torch": torch.__version__,
                "numpy": np.__version__}
    for name in ("prefect", "dvc"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def evaluate(params: Params, data: DeviceData, files: DatasetFiles, runtime: Runtime,
             paths: RunPaths) -> dict[str, Any]:
    model, info = load_model(paths.model)
    model_sha256 = atomic.sha256_of(paths.model)
    if info.get("data_digest") != files.digest or info.get("params_digest") != params.digest():
        raise MnistflowError(f"{paths.model}: trained with other params or data; run training first")
    model.to(runtime.torch)
    names = class_labels(files.dataset)
    val_loss, val_acc, _ = evaluate_tensors(model, data.val)
    test_loss, test_acc, predicted = evaluate_tensors(model, data.test)
    actual = data.test.y.cpu().numpy()
    predicted = predicted.cpu().numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    counts = confusion.sum(axis=1)
    # A class with no test images has no accuracy (null), which 0.0 would misstate.
    per_class = [float(confusion[i, i] / counts[i]) if counts[i] else None for i in range(10)]
    evaluation = {
        "val": {"accuracy": val_acc, "loss": val_loss},
        "test": {"accuracy": test_acc, "loss": test_loss,
                 "per_class_accuracy": {names[i]: per_class[i] for i in range(10)}},
        "confusion_matrix": {"labels": names, "rows_are": "actual", "matrix": confusion.tolist()},
        "epochs": info["epochs"],
        "architecture": info["architecture"],
        "model": {"file": paths.model.name, "sha256": model_sha256},
        # The ONNX export's check against PyTorch (mnistflow.export), when this model was exported.
        "onnx": recorded_check(paths, model_sha256),
        "device": {"name": info.get("device", runtime.device.name), "reason": info.get("device_reason", "")},
        "params_digest": params.digest(),
        "dataset": {"name": files.dataset, "digest": files.digest, "train_size": len(data.train),
                    "val_size": len(data.val), "test_size": len(data.test)},
        "determinism": runtime.determinism(),
        "versions": library_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine(),
                     "implementation": sys.implementation.name},
    }
    val_probabilities = probabilities(model, data.val)  # once, for the label scores and the drift profile
    evaluation["label_scores"] = label_scores(model, val_probabilities, data.val, data.test, files.dataset)
    recent = recent_slice(model, data)
    if recent is not None:
        evaluation["recent"] = recent
        evaluation["dataset"]["increments"] = [inc.id for inc in files.increments]
    atomic.write_json(paths.profile, validation_profile(val_probabilities, data, names))
    atomic.write_json(paths.evaluation, evaluation)
    atomic.write_json(paths.metrics, comparable(evaluation))
    # One row per test image, the shape `dvc plots` wants for its confusion template.
    rows = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in zip(actual, predicted)]
    atomic.write_text(paths.predictions, "\n".join(rows) + "\n")
    return evaluation
