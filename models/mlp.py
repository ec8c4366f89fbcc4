"""The feed-forward network: 784 -> hidden... -> 10."""

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


class MLP(nn.Module):
    def __init__(self, hidden: list[int], activation: str = "relu", dropout: float = 0.0,
                 in_features: int = 784, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float) -> None:
        # Each hidden unit's incoming weight vector is a row of its Linear weight.
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        for layer in linears[:-1]:
            layer.weight.copy_(torch.renorm(layer.weight, p=2, dim=0, maxnorm=max_norm))


def build_model(hidden: list[int], activation: str = "relu", dropout: float = 0.0,
                seed: int = 0) -> MLP:
    """Initialise on the CPU from a seed, so every device starts from the same weights."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return MLP(list(hidden), activation, dropout)
    finally:
        torch.set_rng_state(generator_state)
