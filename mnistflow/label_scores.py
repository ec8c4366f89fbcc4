"""How plausible each label is to a model: the threshold intake uses, and the test set's known label errors.

The score is ``inference.label_probability``: the model's probability of an
image's given label. The evaluate step records two things from it:

- ``plausibility``: the threshold that keeps ``KEEP`` of genuine corrections
  (97.5% of the misread validation digits: bench.label_trust measured 94-97%
  of unseen genuine corrections kept with it).
  A genuine correction is an image the model never saw and got wrong, given
  its true label; the validation images the model got wrong are exactly that,
  so the threshold is the ``1 - KEEP`` quantile of their scores. Intake
  quarantines a new item scored under the champion's threshold
  (lifecycle/trust.py). A fixed number would not do: label smoothing, for one,
  lifts every probability (bench.label_trust measured 0.0009 for the recipe's
  network and 0.036 for cnn-fast's, each keeping 95% of unseen corrections).
- ``known_label_errors`` (MNIST only): accuracy on the given test labels and on
  the corrected ones, and how many of the 15 validated label errors
  (mnistflow.known_label_errors) rank among the 50 and the 100 test images
  whose given label the model finds least plausible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .inference import label_probability
from .known_label_errors import MNIST_TEST, SOURCE, corrected_labels
from .params import EVALUATION_CHUNK
from .tensors import LabelledTensors

KEEP = 0.975
MIN_ERRORS = 20


@torch.no_grad()
def probabilities(model: torch.nn.Module, tensors: LabelledTensors) -> np.ndarray:
    model.eval()
    return torch.cat([torch.softmax(model(tensors.x[i:i + EVALUATION_CHUNK]), dim=1)
                      for i in range(0, len(tensors), EVALUATION_CHUNK)]).cpu().numpy()


def plausibility(val_probabilities: np.ndarray, val_labels: np.ndarray) -> dict[str, Any]:
    wrong = val_probabilities.argmax(axis=1) != val_labels
    scores = label_probability(val_probabilities[wrong], val_labels[wrong])
    if len(scores) < MIN_ERRORS:  # too few for a quantile: intake uses its fallback (lifecycle.trust)
        return {"threshold": None, "keeps": KEEP, "validation_errors": int(wrong.sum()),
                "how": f"not calibrated: fewer than {MIN_ERRORS} validation images were misclassified"}
    return {"threshold": float(np.quantile(scores, 1 - KEEP)), "keeps": KEEP, "validation_errors": len(scores),
            "how": f"the {1 - KEEP:.0%} quantile of the model's probability of the true label on the validation "
                   "images it got wrong"}


def known_label_errors(test_probabilities: np.ndarray, test_labels: np.ndarray) -> dict[str, Any]:
    """The MNIST test set's validated label errors against this model's label scores."""
    scores = label_probability(test_probabilities, test_labels)
    ranked = np.argsort(scores, kind="stable")
    errors = [index for index, *_ in MNIST_TEST]
    predicted = test_probabilities.argmax(axis=1)
    corrected = test_labels.copy()
    keep = np.ones(len(test_labels), dtype=bool)
    for index, label in corrected_labels().items():
        if label is None:
            keep[index] = False
        else:
            corrected[index] = label
    recall = {f"recall_at_{k}": sum(e in set(ranked[:k].tolist()) for e in errors) for k in (50, 100)}
    return {"validated_errors": len(errors), **recall,
            "accuracy_given_labels": float(np.mean(predicted == test_labels)),
            "accuracy_corrected_labels": float(np.mean(predicted[keep] == corrected[keep])),
            "corrected_test_size": int(keep.sum()), "source": SOURCE}


def label_scores(model: torch.nn.Module, val_probabilities: np.ndarray, val: LabelledTensors,
                 test: LabelledTensors, dataset: str) -> dict[str, Any]:
    """``val_probabilities``: the model's on ``val``, which the evaluate step computes once for this and the profile."""
    record: dict[str, Any] = {"plausibility": plausibility(val_probabilities, val.y.cpu().numpy())}
    if dataset == "mnist" and len(test) == 10_000:
        record["known_label_errors"] = known_label_errors(probabilities(model, test), test.y.cpu().numpy())
    return record
