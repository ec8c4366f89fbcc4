"""Network definitions and the checkpoint format. Depends on torch alone."""

from .checkpoint import CheckpointError
from .mlp import MLP, build_model

__all__ = ["MLP", "CheckpointError", "build_model"]
