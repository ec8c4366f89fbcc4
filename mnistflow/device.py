"""Choose the device once, say why, and fix how it computes: the run's ``Runtime``.

An entry point (the flow, a DVC stage) calls ``select_device`` once and hands
the choice to the memory check and then to ``configure_runtime``; the tensors,
training and evaluation all take that one ``Runtime``. So with ``auto`` on a
machine of several GPUs, the GPU whose memory was checked is the GPU that trains.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

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


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: its device, its determinism and its precision."""

    device: DeviceChoice
    threads: int
    deterministic_algorithms: bool
    # bf16 autocast of the forward pass: asked for by train.precision, and on CUDA
    # only (a CPU's bf16 matmuls are slower than float32 on most chips).
    autocast_bf16: bool

    @property
    def torch(self) -> torch.device:
        return self.device.torch

    def determinism(self) -> dict[str, Any]:
        """What makes float results repeatable, for the record (evaluation.json)."""
        return {"threads": self.threads, "deterministic_algorithms": self.deterministic_algorithms}


def configure_runtime(device: DeviceChoice, threads: int, precision: str = "float32") -> Runtime:
    """Pin what makes float results repeatable on ``device``, and return the runtime.

    On a CPU every op this pipeline uses is deterministic once the thread count
    is fixed. On CUDA some kernels are not, so deterministic algorithms are
    switched on there only: the switch costs 1.5 s of imports on every start.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads > cores:
        # Oversubscribed, each op's threads wait on each other: 50x slower measured (issue 39).
        logging.getLogger("mnistflow").warning(
            "train.threads: %d threads on %d cores is oversubscribed and much slower; set train.threads: %d "
            "(the results then differ in their last bits: the thread count is part of determinism)",
            threads, cores, cores)
    torch.set_num_threads(threads)
    on_cuda = device.torch.type == "cuda"
    if on_cuda:
        # cuBLAS reads this when its first handle is made, i.e. before training.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return Runtime(device, threads, on_cuda, precision == "bf16" and on_cuda)


def compile_mode(setting: bool | str, device: torch.device) -> str | None:
    """The ``torch.compile`` mode ``train.compile`` asks for on ``device``; None: eager.

    CUDA graphs exist on CUDA only, so ``reduce-overhead`` elsewhere is the default mode.
    """
    if setting is False:
        return None
    if setting == "reduce-overhead" and device.type == "cuda":
        return "reduce-overhead"
    return "default"


def training_forward(model: torch.nn.Module, setting: bool | str, device: torch.device) -> Callable:
    """The call training makes of ``model`` under ``train.compile``."""
    mode = compile_mode(setting, device)
    if mode is None:
        return model
    compiled = torch.compile(model, mode=mode)
    if mode != "reduce-overhead":
        return compiled

    def step(x: torch.Tensor) -> torch.Tensor:
        # A new step for the graph trees: the last step's outputs (its loss is
        # already accumulated) may be overwritten by this replay.
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(x)

    return step
