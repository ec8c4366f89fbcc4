"""Network definitions and the checkpoint format."""

from .checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from .mlp import MLP, build_model

__all__ = ["MLP", "build_model", "load_checkpoint", "load_model", "save_checkpoint", "save_model"]
