"""Network definitions and the checkpoint format. Depends on torch alone.

A network is described by its *architecture*, a plain dict recorded in every
model file, so that a file rebuilds its own network whatever the params say now:

    {"kind": "mlp", "input_shape": [28, 28], "hidden": [32], "activation": "relu", "dropout": 0.0}
    {"kind": "cnn", "input_shape": [28, 28], "channels": [24, 32], "kernels": [5, 3],
     "hidden": [256], "activation": "relu", "dropout": 0.0, "batch_norm": false, "padding": "valid",
     "convs_per_block": 1}

Model files written before the CNN existed have neither ``kind`` nor
``input_shape``: they are 28x28 MLPs. CNN files without ``padding`` are "valid";
without ``test_flip``, false (a file records it only where it is true).
"""

from .checkpoint import CheckpointError
from .cnn import CNN
from .mlp import MLP
from .networks import Network, build_model, network

__all__ = ["CNN", "MLP", "CheckpointError", "Network", "build_model", "network"]
