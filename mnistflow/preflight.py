"""What can be checked before a run writes anything: the device, the memory, the folders.

Entry points call ``preflight`` after the params validate and before the first
write, so that ``device: cuda:7`` on a machine without it, a network that
cannot fit, or a folder that cannot be written is one line and an untouched
disk, not a half-made run.
"""

from __future__ import annotations

import os
from pathlib import Path

from .datasets import DATASETS
from .errors import MnistflowError
from .params import EVALUATION_CHUNK, Params, cnn_sizes

GIB = 2**30
# Leave this share of what the device has for everything the estimate leaves out.
HEADROOM = 0.8


def layer_sizes(params: Params, side: int = 28) -> tuple[int, list[int]]:
    """(weights, the values each layer outputs per image) of the params' network."""
    model = params.model
    weights, outputs, flat = 0, [side * side], side * side
    if model.kind == "cnn":
        convs = model.convs_per_block
        sizes = cnn_sizes((side, side), list(model.kernels), model.padding, convs)
        for before, out, kernel, (_, (height, width)) in zip([1, *model.channels], model.channels, model.kernels,
                                                              sizes):
            weights += (before + (convs - 1) * out) * out * kernel * kernel + convs * out
            outputs += [out * height * width] * convs  # the inner ones are a little larger when valid
        height, width = sizes[-1][1]
        flat = model.channels[-1] * (height // 2) * (width // 2)
    widths = [flat, *model.hidden, 10]
    weights += sum(a * b + b for a, b in zip(widths, widths[1:]))
    return weights, outputs + widths[1:]


def memory_estimate(params: Params) -> dict[str, int]:
    """Bytes a training run needs at its peak, by part (float32 throughout)."""
    spec = DATASETS.get(params.data.dataset)
    images = (spec.train_size + spec.test_size) if spec else 0
    weights, widths = layer_sizes(params)
    opt = params.train.optimizer
    states = {"sgd": 1 if opt.momentum > 0 else 0, "adam": 2, "adamw": 2}[opt.name]
    batch = params.train.batch_size
    return {
        # weights, their gradients, and the optimizer's state per weight
        "parameters": 4 * weights * (2 + states),
        # forward activations kept for backward, and their gradients
        "activations": 4 * batch * sum(widths) * 3,
        # the evaluation pass (EVALUATION_CHUNK images at a time) through the widest layer
        "evaluation": 4 * EVALUATION_CHUNK * max(widths) * 2,
        # every image on the device, once, as float32, with its label
        "data": images * (4 * 784 + 8),
    }


def available_bytes(device) -> int:
    if device.torch.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device.torch.index or 0)[0]
    import psutil

    return psutil.virtual_memory().available


def check_memory(params: Params, device) -> None:
    need = memory_estimate(params)
    total, have = sum(need.values()), available_bytes(device)
    if total > HEADROOM * have:
        field = "model.hidden" if need["parameters"] >= need["activations"] else "train.batch_size"
        parts = ", ".join(f"{name} {value / GIB:,.1f}" for name, value in need.items())
        raise MnistflowError(
            f"{field}: a run with model.hidden {list(params.model.hidden)} and train.batch_size "
            f"{params.train.batch_size} needs about {total / GIB:,.1f} GiB ({parts}) on {device.name}, "
            f"which has {have / GIB:,.1f} GiB available")


def writable(folder: Path) -> None:
    """``folder`` exists and is writable, or can be created: its nearest existing parent is."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise MnistflowError(f"{folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MnistflowError(f"{folder}: cannot write in {existing} (permission denied)")


def preflight(params: Params, folders: list[Path], device) -> None:
    """Every check that needs no write, for the ``device`` the caller chose (a DeviceChoice)."""
    check_memory(params, device)
    for folder in folders:
        writable(folder)
