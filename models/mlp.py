"""The feed-forward network: flattened image -> hidden... -> classes.

Its fully connected layers are also the CNN's head, so the two kinds share
``dense_layers`` and ``max_norm_``.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def dense_layers(width: int, hidden: list[int], activation: str, dropout: float, classes: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return layers + [nn.Linear(width, classes)]


@torch.no_grad()
def max_norm_(module: nn.Module, max_norm: float) -> None:
    """Renormalise each hidden unit's incoming weights (a row of its Linear weight)
    to at most ``max_norm``; the output layer is left free (Srivastava et al. 2014)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        layer.weight.copy_(torch.renorm(layer.weight, p=2, dim=0, maxnorm=max_norm))


class MLP(nn.Module):
    def __init__(self, hidden: list[int], activation: str = "relu", dropout: float = 0.0,
                 in_features: int = 784, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(*dense_layers(in_features, list(hidden), activation, dropout, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def apply_max_norm(self, max_norm: float) -> None:
        max_norm_(self, max_norm)
