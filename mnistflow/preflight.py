"""What can be checked before a run writes anything: the device, the memory, the folders.

Entry points call ``preflight`` after the params validate and before the first
write, so that ``device: cuda:7`` on a machine without it, a network that
cannot fit, or a folder that cannot be written is one line and an untouched
disk, not a half-made run.
"""

from __future__ import annotations

import os
from pathlib import Path

from .dataset_check import DatasetShape
from .datasets import DATASETS
from .errors import MnistflowError
from .params import EVALUATION_CHUNK, DataParams, Params, cnn_shape_problem, cnn_sizes
from .paths import RunPaths

GIB = 2**30
# Leave this share of what the device has for everything the estimate leaves out.
HEADROOM = 0.8


def layer_sizes(params: Params, shape: tuple[int, int] = (28, 28)) -> tuple[int, list[int], int]:
    """(weights, the values each layer outputs per image, how many of the weights are
    the convolutions') of the params' network, for images of ``shape``."""
    model = params.model
    pixels = shape[0] * shape[1]
    weights, outputs, flat = 0, [pixels], pixels
    if model.kind == "cnn":
        convs = model.convs_per_block
        sizes = cnn_sizes(shape, list(model.kernels), model.padding, convs)
        for before, out, kernel, (_, (height, width)) in zip([1, *model.channels], model.channels, model.kernels,
                                                              sizes):
            weights += (before + (convs - 1) * out) * out * kernel * kernel + convs * out
            outputs += [out * max(height, 0) * max(width, 0)] * convs  # the inner ones are a little larger when valid
        height, width = sizes[-1][1]
        flat = model.channels[-1] * max(height // 2, 0) * max(width // 2, 0)
    conv_weights = weights
    widths = [flat, *model.hidden, 10]
    weights += sum(a * b + b for a, b in zip(widths, widths[1:]))
    return weights, outputs + widths[1:], conv_weights


def memory_estimate(params: Params, dataset: DatasetShape | None = None) -> dict[str, int]:
    """Bytes a training run needs at its peak, by part (float32 throughout). ``dataset``:
    what the headers say (a custom dataset's sizes are known only once it is downloaded)."""
    spec = DATASETS.get(params.data.dataset)
    if dataset is None and spec is not None:
        dataset = DatasetShape(spec.train_size, spec.test_size, (28, 28))
    shape = dataset.image_shape if dataset else (28, 28)
    images = dataset.images if dataset else 0
    weights, widths, _ = layer_sizes(params, shape)
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
        "data": images * (4 * shape[0] * shape[1] + 8),
    }


def _cause(params: Params, need: dict[str, int], dataset: DatasetShape | None) -> str:
    """The param to change: the one behind the largest part of the estimate."""
    largest = max(need, key=need.get)
    if largest == "data":
        return "data.dataset"
    if largest == "activations":
        return "train.batch_size"
    weights, widths, conv_weights = layer_sizes(params, dataset.image_shape if dataset else (28, 28))
    if params.model.kind == "cnn":
        conv_outputs = sum(widths[: len(widths) - len(params.model.hidden) - 1])
        fc_outputs = sum(widths[len(widths) - len(params.model.hidden) - 1:])
        if (largest == "parameters" and conv_weights >= weights - conv_weights) or \
                (largest == "evaluation" and conv_outputs >= fc_outputs):
            return "model.channels"
    return "model.hidden"


def available_bytes(device) -> int:
    if device.torch.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device.torch.index or 0)[0]
    import psutil

    return psutil.virtual_memory().available


def check_memory(params: Params, device, dataset: DatasetShape | None = None) -> None:
    need = memory_estimate(params, dataset)
    total, have = sum(need.values()), available_bytes(device)
    if total > HEADROOM * have:
        model = params.model
        network = (f"model.channels {list(model.channels)}, model.kernels {list(model.kernels)}, "
                   if model.kind == "cnn" else "")
        parts = ", ".join(f"{name} {value / GIB:,.1f}" for name, value in need.items())
        images = f" and {dataset.images:,} images of {dataset.image_shape[0]}x{dataset.image_shape[1]}" \
            if dataset else ""
        raise MnistflowError(
            f"{_cause(params, need, dataset)}: a run with {network}model.hidden {list(model.hidden)}, "
            f"train.batch_size {params.train.batch_size}{images} needs about {total / GIB:,.1f} GiB ({parts}) "
            f"on {device.name}, which has {have / GIB:,.1f} GiB available")


def check_network_fits(params: Params, dataset: DatasetShape) -> None:
    """The network's convolutions fit the dataset's images (a custom dataset's size is in its headers)."""
    model = params.model
    if model.kind == "cnn":
        problem = cnn_shape_problem(dataset.image_shape, list(model.channels), list(model.kernels),
                                    model.padding, model.convs_per_block)
        if problem:
            raise MnistflowError(problem)


def check_fits_data(params: Params, device, dataset: DatasetShape) -> None:
    """What only the dataset's headers can tell, checked before the split is made:
    the network fits its images, and the run fits in memory with its images counted."""
    check_network_fits(params, dataset)
    check_memory(params, device, dataset)


# What a run folder holds (mnistflow.paths.RunPaths, and a sweep trial's record): an
# existing folder with none of these, but other files, is somebody else's folder.
RUN_ENTRIES = frozenset({*RunPaths.entry_names(), "trial.json"})


def resolved(path: Path, argument: str) -> Path:
    """``path`` made absolute, or one line naming the argument (a loop of links, a folder gone)."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise MnistflowError(f"{argument}: {path}: cannot be resolved ({exc})") from None


def check_run_folder(run_dir: Path, data_root: Path, registry: Path | None = None,
                     argument: str = "--run-dir") -> None:
    """Refuse a run folder that is not one: the filesystem root or the home folder, a
    folder inside (or holding) the registry, whose only writer is promotion, or the data
    root, which DVC tracks; or an existing folder of other files. (docs/errors.md)"""
    folder = resolved(run_dir, argument)
    if folder == Path(folder.anchor) or folder == resolved(Path.home(), "HOME"):
        raise MnistflowError(f"{argument}: {run_dir} is {'the filesystem root' if folder == Path(folder.anchor) else 'the home folder'}; "
                             "give the run a folder of its own (the default is outputs/)")
    for root, what in ((registry, "the registry, whose only writer is promotion"),
                       (data_root, "the data root, which holds verified datasets")):
        if root is None:
            continue
        root = resolved(root, "the data root" if root is data_root else "the registry")
        if folder == root or root in folder.parents:
            raise MnistflowError(f"{argument}: {run_dir} is inside {root}, {what}; give the run a folder of its "
                                 "own (the default is outputs/)")
        if folder in root.parents:
            raise MnistflowError(f"{argument}: {run_dir} holds {root}, {what}; give the run a folder of its own "
                                 "(the default is outputs/)")
    try:
        entries = [e.name for e in folder.iterdir() if not e.name.startswith(".")] if folder.is_dir() else []
    except OSError as exc:
        raise MnistflowError(f"{argument}: {run_dir}: cannot list it ({exc.strerror or exc})") from None
    if entries and not RUN_ENTRIES.intersection(entries):
        raise MnistflowError(f"{argument}: {run_dir} holds {len(entries)} other file(s) ({', '.join(sorted(entries)[:3])}"
                             f"{', ...' if len(entries) > 3 else ''}) and no run; give an empty or new folder, "
                             "or a run's folder")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def writable(folder: Path) -> None:
    """``folder`` exists and is writable, or can be created: its nearest existing parent is."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise MnistflowError(f"{folder}: {existing} is a file, not a folder")
    if _read_only(existing):
        raise MnistflowError(f"{folder}: {existing} is on a read-only filesystem")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MnistflowError(f"{folder}: cannot write in {existing} (permission denied)")


def check_data_root(data: DataParams, data_root: Path) -> None:
    """The data root can take the dataset: writable, or already holding it verified
    (a shared read-only mount of the data is used as it is, never copied)."""
    from .dataset_files import MANIFEST, dataset_dir

    if (dataset_dir(data, data_root) / MANIFEST).is_file():
        return  # the download step verifies it in place and writes nothing that must succeed
    writable(data_root)


def preflight(params: Params, folders: list[Path], device, *, data_root: Path | None = None) -> None:
    """Every check that needs no write and no data, for the ``device`` the caller chose (a
    DeviceChoice): ``folders`` must be writable, ``data_root`` able to take the dataset.
    What needs the data's headers is ``check_fits_data``'s, once it is downloaded."""
    check_memory(params, device)
    for folder in folders:
        writable(folder)
    if data_root is not None:
        check_data_root(params.data, data_root)
