"""Loss and accuracy of a network on labelled tensors: the one measure of how good a model is.

Training calls it after every epoch for its validation figures, the evaluate
step for the final ones, and the champion's judge for both models, so all of
them report the same numbers the same way. It imports no step's writer and
no exporter: training pays for nothing it does not use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .params import EVALUATION_CHUNK
from .tensors import LabelledTensors, batches


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
