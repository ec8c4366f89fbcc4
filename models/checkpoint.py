"""The checkpoint format: plain dicts of tensors and plain data, never pickles.

Two kinds of file:
- a training checkpoint (``outputs/checkpoints/last.pt``): model and optimizer
  state, RNG states, how far training got, the history so far, and the digests
  of the params and data it was made with, so resume can refuse a stranger;
- the model (``outputs/model.pt``): the weights, the architecture and the input
  scaling, all that serving code needs.

Both load with ``torch.load(weights_only=True)``: a file from anywhere cannot run
code on load.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mnistflow import atomic
from mnistflow.errors import MnistflowError

from .mlp import MLP

CHECKPOINT_FORMAT = "mnistflow.checkpoint/1"
MODEL_FORMAT = "mnistflow.model/1"


def _save(path: Path, payload: dict[str, Any]) -> None:
    # Serialise in memory: torch.save names the zip's inner folder after the file,
    # and the temporary file's random name would make every save's bytes differ.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic.write_bytes(path, buffer.getvalue())


def _load(path: Path, expected_format: str) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise MnistflowError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MnistflowError(f"{path}: corrupt or not a checkpoint ({first_line[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise MnistflowError(f"{path}: not a {expected_format} file (found {found!r})")
    return payload


def save_checkpoint(path: Path, **state: Any) -> None:
    _save(path, {"format": CHECKPOINT_FORMAT, **state})


def load_checkpoint(path: Path) -> dict[str, Any]:
    return _load(path, CHECKPOINT_FORMAT)


def save_model(path: Path, model: MLP, *, architecture: dict[str, Any], input_scaling: dict[str, float],
               **metadata: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _save(path, {"format": MODEL_FORMAT, "state_dict": state, "architecture": architecture,
                 "input_scaling": input_scaling, **metadata})


def load_model(path: Path) -> tuple[MLP, dict[str, Any]]:
    """Rebuild the trained network from ``model.pt``; returns (model in eval mode, metadata).

    Inputs are flattened 28x28 images scaled to [0, 1], then
    ``(x - input_scaling["mean"]) / input_scaling["std"]``.
    """
    payload = _load(path, MODEL_FORMAT)
    arch = payload["architecture"]
    model = MLP(arch["hidden"], arch["activation"], arch.get("dropout", 0.0))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise MnistflowError(f"{path}: weights do not fit the recorded architecture ({str(exc)[:160]})") from None
    model.eval()
    return model, {k: v for k, v in payload.items() if k != "state_dict"}
