"""The data as tensors (the train and evaluate stages open them) on the device, and seeded shuffled batches from them.

The original recipe turned one PIL image at a time into a tensor through a
DataLoader; that was most of its run time. Here the images are decoded once,
scaled once, moved to the device once, and each epoch is one seeded
permutation from which every batch is gathered with ``index_select``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .dataset_files import DatasetFiles
from .idx import read_idx
from .increments import load_increment
from .split import read_split


@dataclass
class LabelledTensors:
    x: torch.Tensor  # (n, height * width) float32, scaled (and maybe normalised)
    y: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DeviceData:
    """Training, validation and test images on the device, scaled alike."""

    train: LabelledTensors
    val: LabelledTensors
    test: LabelledTensors
    mean: float
    std: float
    shape: tuple[int, int]  # (height, width) of one image, from the IDX header
    # The validation part of the increments alone ("recent data"), also inside ``val``; None without increments.
    recent: LabelledTensors | None = None


def epoch_seed(seed: int, epoch: int) -> int:
    # One seed per (run seed, global epoch): a resumed run replays exactly the
    # batches an uninterrupted run would have seen, with no RNG state to restore.
    return (seed * 1_000_003 + epoch) % 2**63


def batches(tensors: LabelledTensors, batch_size: int, *, shuffle_seed: int | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    x, y = tensors.x, tensors.y
    if shuffle_seed is None:
        for start in range(0, len(y), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    generator = torch.Generator(device=x.device).manual_seed(shuffle_seed)
    order = torch.randperm(len(y), generator=generator, device=x.device)
    # ceil(n / batch_size) batches of near-equal size (they differ by one image at most),
    # not full batches and a remainder: the loss is a mean over the batch, so a last
    # batch of one image takes a full step on that image alone. At lr 0.5 that one
    # step sent a 784-32-10 network to "8" for every digit (48,801 images: 9.74% test).
    # Sizes that batch_size divides give exactly the batches of before.
    # A gather per batch, not a permuted copy of the whole split per epoch: on a
    # CPU the 150 MB copy cost a third of the epoch (page faults, cache misses).
    for index in order.tensor_split(training_steps(len(y), batch_size)):
        yield x.index_select(0, index), y.index_select(0, index)


def training_steps(images: int, batch_size: int) -> int:
    """Batches (optimizer steps) in one epoch over ``images`` training images."""
    return -(-images // batch_size)


def to_device_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device,
                      mean: float, std: float) -> LabelledTensors:
    # Move uint8 (4x fewer bytes than float32), then scale on the device.
    # np.array copies the read-only view of the IDX bytes, which torch refuses to wrap.
    x = torch.from_numpy(np.array(images, dtype=np.uint8, order="C")).to(device)
    x = x.reshape(len(x), -1).float().div_(255.0)
    if (mean, std) != (0.0, 1.0):
        x.sub_(mean).div_(std)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return LabelledTensors(x, y)


def rescaled(tensors: LabelledTensors, scaling: tuple[float, float], to: tuple[float, float]) -> LabelledTensors:
    """The same images under another model's input scaling (mean, std): a champion
    and a challenger are judged on the test tensors already on the device."""
    if scaling == to:
        return tensors
    (mean, std), (new_mean, new_std) = scaling, to
    return LabelledTensors(tensors.x.mul(std).add_(mean).sub_(new_mean).div_(new_std), tensors.y)


def load_device_data(files: DatasetFiles, split_path: Path, device: torch.device,
                     normalize: bool = False) -> DeviceData:
    """Decode the IDX files once, partition them by the recorded split, and move them to ``device``.

    Increments' items follow the base images, in the order the increments arrived:
    with none, the tensors are the base split's, exactly.
    """
    train_idx, val_idx, record = read_split(split_path, files)
    train_images = read_idx(files.paths["train-images"], 3)
    train_labels = read_idx(files.paths["train-labels"], 1)
    test_images = read_idx(files.paths["test-images"], 3)
    test_labels = read_idx(files.paths["test-labels"], 1)
    shape = (int(train_images.shape[1]), int(train_images.shape[2]))
    train = [(train_images[train_idx], train_labels[train_idx])]
    val = [(train_images[val_idx], train_labels[val_idx])]
    recent = []
    for increment, assigned in zip(files.increments, record.get("increments", [])):
        images, labels = load_increment(increment, shape)
        held_out = np.zeros(len(labels), dtype=bool)
        held_out[np.asarray(assigned["val_indices"], dtype=np.int64)] = True
        train.append((images[~held_out], labels[~held_out]))
        recent.append((images[held_out], labels[held_out]))
    train_x, train_y = _joined(train)
    val_x, val_y = _joined(val + recent)
    mean, std = 0.0, 1.0
    if normalize:
        # Statistics of the training part only: validation must stay unseen.
        pixels = train_x.astype(np.float64) / 255.0
        mean, std = float(pixels.mean()), float(pixels.std())
    recent_tensors = None
    if files.increments:
        recent_x, recent_y = _joined(recent) if recent else (np.zeros((0, *shape), np.uint8), np.zeros(0, np.uint8))
        recent_tensors = to_device_tensors(recent_x, recent_y, device, mean, std)
    return DeviceData(
        train=to_device_tensors(train_x, train_y, device, mean, std),
        val=to_device_tensors(val_x, val_y, device, mean, std),
        test=to_device_tensors(test_images, test_labels, device, mean, std),
        mean=mean,
        std=std,
        shape=shape,
        recent=recent_tensors,
    )


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:  # no copy for the base split alone
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator,
                 shape: tuple[int, int] = (28, 28), fill: float = 0.0) -> torch.Tensor:
    """Translate each image (flattened, of ``shape``) by up to ``max_shift`` pixels,
    filled with ``fill``: the background's value, given rather than measured,
    because reading a value back from the device would stall every step on a GPU.

    Done with one gather on the batch tensor, on whatever device it lives.
    """
    n = len(x)
    height, width = shape
    images = x.view(n, height, width)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, value=fill)
    shifts = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator, device=x.device)
    rows = (torch.arange(height, device=x.device) + shifts[0])[:, :, None]
    cols = (torch.arange(width, device=x.device) + shifts[1])[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], rows, cols].reshape(n, -1)


def random_flip(x: torch.Tensor, generator: torch.Generator, shape: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """Mirror each image (flattened, of ``shape``) left to right with probability 1/2,
    on the device: a garment's mirror image is the same garment (a digit's is not)."""
    n = len(x)
    images = x.view(n, *shape)
    flipped = torch.rand(n, generator=generator, device=x.device) < 0.5
    return torch.where(flipped[:, None, None], images.flip(-1), images).reshape(n, -1)
