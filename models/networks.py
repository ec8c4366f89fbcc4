"""Build a network from its architecture (the plain dict a model file records)."""

from __future__ import annotations

from typing import Any, Union

import torch

from .cnn import CNN
from .mlp import MLP

Network = Union[MLP, CNN]


def network(architecture: dict[str, Any]) -> Network:
    kind = architecture.get("kind", "mlp")
    shape = tuple(architecture.get("input_shape", (28, 28)))
    common = dict(activation=architecture["activation"], dropout=architecture.get("dropout", 0.0))
    if kind == "mlp":
        return MLP(list(architecture["hidden"]), in_features=shape[0] * shape[1], **common)
    if kind == "cnn":
        return CNN(list(architecture["channels"]), list(architecture["kernels"]), list(architecture["hidden"]),
                   batch_norm=architecture.get("batch_norm", False), input_shape=shape,
                   padding=architecture.get("padding", "valid"),
                   convs_per_block=architecture.get("convs_per_block", 1),
                   test_flip=architecture.get("test_flip", False), **common)
    raise ValueError(f"unknown network kind {kind!r}")


def build_model(architecture: dict[str, Any], seed: int = 0) -> Network:
    """Initialise on the CPU from a seed, so every device starts from the same weights."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return network(architecture)
    finally:
        torch.set_rng_state(generator_state)
