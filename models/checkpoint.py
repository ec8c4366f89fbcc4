"""The checkpoint format: plain dicts of tensors and plain data, never pickles.

Two kinds of file:
- a training checkpoint (``<run>/checkpoints/last.pt``): model and optimizer
  state, how far training got, the history so far, and the digests of the
  params and data it was made with, so resume can refuse a stranger;
- the model (``<run>/model.pt``): the weights, the architecture and the input
  scaling, all that serving code needs.

Both decode with ``torch.load(weights_only=True)``: a file from anywhere cannot
run code on load. This module turns payloads into bytes and back; writing them
atomically and reporting a bad file to the user is ``mnistflow.checkpoints``'s job,
so ``models`` depends on nothing but torch.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from .networks import Network, network

CHECKPOINT_FORMAT = "mnistflow.checkpoint/1"
MODEL_FORMAT = "mnistflow.model/1"


class CheckpointError(ValueError):
    """A file that is not a checkpoint of the expected kind; the message names it."""


def encode(payload: dict[str, Any]) -> bytes:
    # Serialise in memory: torch.save names the zip's inner folder after the file,
    # and a temporary file's random name would make every save's bytes differ.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip; anything else is refused unread


def decode(path: Path, expected_format: str) -> dict[str, Any]:
    """The payload of a checkpoint file; any file that is not one is a CheckpointError naming it."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if magic != ZIP_MAGIC:
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (not a zip of tensors and plain data)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message goes on to suggest weights_only=False: never, for a file from anywhere.
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (it is not a zip of tensors and plain "
                              "data, and nothing else is ever unpickled)") from None
    except MemoryError:
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (it asks for more memory than there is)") from None
    except Exception as exc:  # noqa: BLE001  any other failure to decode (IndexError, KeyError, ...) is the file's
        text = str(exc).strip()
        first_line = text.splitlines()[0][:200] if text else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or not a checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a {expected_format} file (found {str(found)[:80]!r})")
    return payload


def checkpoint_payload(**state: Any) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, **state}


def model_payload(model: Network, *, architecture: dict[str, Any], input_scaling: dict[str, float],
                  **metadata: Any) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": MODEL_FORMAT, "state_dict": state, "architecture": architecture,
            "input_scaling": input_scaling, **metadata}


def model_from_payload(path: Path, payload: dict[str, Any]) -> tuple[Network, dict[str, Any]]:
    """Rebuild the trained network; returns (model in eval mode, metadata).

    Inputs are images (N x H*W, or N x 1 x H x W, H x W the architecture's
    ``input_shape``) scaled to [0, 1], then ``(x - input_scaling["mean"]) / input_scaling["std"]``.
    """
    try:
        model = network(payload["architecture"])
    except Exception as exc:  # noqa: BLE001  a recorded architecture of any shape is the file's fault
        raise CheckpointError(f"{path}: its recorded architecture cannot be built ({str(exc)[:200]!r})") from None
    scaling = payload.get("input_scaling")
    if not (isinstance(scaling, dict) and all(isinstance(scaling.get(k), (int, float)) for k in ("mean", "std"))
            and scaling["std"] > 0):
        raise CheckpointError(f"{path}: its input_scaling is not a mean and a positive std")
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path}: weights do not fit the recorded architecture ({first_line})") from None
    model.eval()
    return model, {k: v for k, v in payload.items() if k != "state_dict"}
