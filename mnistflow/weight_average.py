"""An exponential moving average of a network's weights (``train.ema``).

The averaged copy is what each epoch validates and what ``model.pt`` holds; the
network itself keeps training. Its state goes into every checkpoint with the
number of updates made, so a resumed run averages exactly as an unbroken one.

Not ``torch.optim.swa_utils.AveragedModel``: its update reads its update count
on the host (``bool(n_averaged == 0)``), a device synchronisation on every
step on CUDA, which is what the GPU path must not have (bench/gpu_check.py
counts them). Here the count is a Python int.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    def rate(self) -> float:
        """This update's decay: short at first (a young average of the first, poor
        weights would lag for thousands of steps), up to ``decay`` after ~10/(1-decay) steps."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        keep = self.rate()
        for averaged, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if averaged.is_floating_point():
                averaged.lerp_(current, 1 - keep)
            else:  # batch norm's step count
                averaged.copy_(current)

    def state(self) -> dict[str, Any]:
        return {"weights": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "updates": self.updates}

