"""Step 4: choose the device once, and say why."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import MnistflowError


@dataclass(frozen=True)
class DeviceChoice:
    name: str
    reason: str

    @property
    def torch(self) -> torch.device:
        return torch.device(self.name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def select_device(request: str = "auto") -> DeviceChoice:
    """auto: CUDA (the visible GPU with most free memory), else MPS, else CPU.

    torch only sees the GPUs that CUDA_VISIBLE_DEVICES lets through, so
    respecting it needs nothing more than asking torch.
    """
    if request == "cpu":
        return DeviceChoice("cpu", "requested")
    if request == "mps":
        if not _mps_available():
            raise MnistflowError("device: mps requested but MPS is not available on this machine")
        return DeviceChoice("mps", "requested")
    if request.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(request.split(":", 1)[1]) if ":" in request else 0
        if count == 0:
            raise MnistflowError(f"device: {request} requested but no CUDA device is visible")
        if index >= count:
            raise MnistflowError(f"device: {request} requested but only {count} CUDA device(s) are visible")
        return DeviceChoice(f"cuda:{index}", f"requested ({torch.cuda.get_device_name(index)})")
    if request != "auto":
        raise MnistflowError(f"device: unknown device {request!r}")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        free = [torch.cuda.mem_get_info(i)[0] for i in range(count)]
        best = max(range(count), key=lambda i: free[i])
        why = f"auto: CUDA available, {count} visible"
        if count > 1:
            why += f"; cuda:{best} has the most free memory ({free[best] / 2**30:.1f} GiB)"
        return DeviceChoice(f"cuda:{best}", f"{why} ({torch.cuda.get_device_name(best)})")
    if _mps_available():
        return DeviceChoice("mps", "auto: MPS available, no CUDA")
    return DeviceChoice("cpu", "auto: no CUDA or MPS device available")
