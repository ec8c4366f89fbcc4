"""Checkpoints and models on disk: written atomically, read without unpickling.

The format itself is ``models.checkpoint``'s; this module adds the two things a
pipeline step needs around it: a file appears whole or not at all, and a bad
file is a user's error (one line) rather than a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models import CheckpointError, Network
from models.checkpoint import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    checkpoint_payload,
    decode,
    encode,
    model_from_payload,
    model_payload,
)

from . import atomic
from .errors import MnistflowError


def save_checkpoint(path: Path, **state: Any) -> None:
    atomic.write_bytes(path, encode(checkpoint_payload(**state)))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return decode(path, CHECKPOINT_FORMAT)
    except CheckpointError as exc:
        raise MnistflowError(str(exc)) from None


def save_model(path: Path, model: Network, **record: Any) -> None:
    atomic.write_bytes(path, encode(model_payload(model, **record)))


def load_model(path: Path) -> tuple[Network, dict[str, Any]]:
    """The trained network in eval mode, and its record (architecture, input scaling, digests)."""
    try:
        return model_from_payload(path, decode(path, MODEL_FORMAT))
    except CheckpointError as exc:
        raise MnistflowError(str(exc)) from None
