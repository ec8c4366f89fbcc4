"""A trained model ready to answer: load once, then predict on images in [0, 1].

Shared by the predict CLI, the HTTP service and the ONNX check, so all three
scale inputs, batch them and name classes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import atomic
from .checkpoints import load_model
from .datasets import class_labels

TOP_K = 3


def label_probability(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The model's probability of each claimed label: intake's plausibility score of a new
    item, and the ranking that looks for label errors in a test set."""
    return probabilities[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]


def softmax(logits: torch.Tensor) -> np.ndarray:
    """The probabilities every answer gives: the service's routes take them from logits they also return."""
    return torch.softmax(logits, dim=1).numpy()


@dataclass(frozen=True)
class Predictor:
    """One loaded model file. Immutable: the service swaps whole predictors, so a
    request that took one never sees another's weights."""

    path: Path
    model: torch.nn.Module
    record: dict[str, Any]
    sha256: str
    labels: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "Predictor":
        model, record = load_model(path)  # a missing or bad file: one line naming it
        return cls(Path(path), model, record, atomic.sha256_of(path), class_labels(record.get("dataset")))

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.record["architecture"].get("input_shape", (28, 28)))  # type: ignore[return-value]

    def logits(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Logits for images (N x H x W, N x H*W or N x 1 x H x W) with pixels in [0, 1]."""
        scaling = self.record["input_scaling"]
        x = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, *self.input_shape)
        with torch.inference_mode():
            return self.model((x - scaling["mean"]) / scaling["std"])

    def probabilities(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        return softmax(self.logits(pixels))

    def answers(self, pixels: np.ndarray) -> list[dict[str, Any]]:
        """Per image: the label and the top 3, as plain data (the CLI's --json, the API's answer)."""
        return [self.answer(p) for p in self.probabilities(pixels)]

    def answer(self, probabilities: np.ndarray) -> dict[str, Any]:
        order = np.argsort(-probabilities, kind="stable")
        return {
            "label": self.labels[order[0]],
            "class_index": int(order[0]),
            "top": [{"label": self.labels[i], "probability": float(probabilities[i])} for i in order[:TOP_K]],
            "probabilities": [float(p) for p in probabilities],
        }
