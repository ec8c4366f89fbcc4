"""The original recipe, faithfully: the baseline every speed figure is divided by.

torchvision ``MNIST`` with ``ToTensor`` (one PIL image at a time), a
``DataLoader`` with ``SubsetRandomSampler`` over a seeded 80/20 split, batch 100,
a wrapper that moves each batch to the device, a 784-32-10 ReLU MLP, SGD for 5
epochs at lr 0.5 then 5 at lr 0.1, validation accuracy after every epoch.

Usage: python -m bench.baseline RAW_DIR   (RAW_DIR holds the four uncompressed IDX files)
Prints one JSON line with its timings and accuracies.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.sampler import SubsetRandomSampler
from torchvision import datasets, transforms

from mnistflow.train import warm_up_optimizers


class WrappedDataLoader:
    """Moves each batch to the device as it is yielded (the recipe's wrapper)."""

    def __init__(self, loader, device):
        self.loader, self.device = loader, device

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield x.view(-1, 784).to(self.device), y.to(self.device)


def accuracy(model, loader):
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            total += len(y)
    return correct / total, loss_sum / total


def main(raw_dir: str) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "MNIST"))
        os.symlink(os.path.abspath(raw_dir), os.path.join(root, "MNIST", "raw"))
        train_set = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
        test_set = datasets.MNIST(root, train=False, download=False, transform=transforms.ToTensor())

        indices = list(range(len(train_set)))
        split = int(0.2 * len(indices))
        np.random.shuffle(indices)
        train_idx, val_idx = indices[split:], indices[:split]
        train_loader = WrappedDataLoader(
            DataLoader(train_set, batch_size=100, sampler=SubsetRandomSampler(train_idx)), device)
        val_loader = WrappedDataLoader(
            DataLoader(train_set, batch_size=100, sampler=SubsetRandomSampler(val_idx)), device)
        test_loader = WrappedDataLoader(DataLoader(test_set, batch_size=100), device)

        model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
        warm_up_optimizers()
        started = time.perf_counter()
        for lr, epochs in ((0.5, 5), (0.1, 5)):
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            for _ in range(epochs):
                model.train()
                for x, y in train_loader:
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
                model.eval()
                val_acc, _ = accuracy(model, val_loader)
        seconds = time.perf_counter() - started
        test_acc, _ = accuracy(model, test_loader)
    print(json.dumps({
        "name": "baseline (original recipe)", "train_seconds": seconds,
        "samples_per_second": len(train_idx) * 10 / seconds, "val_accuracy": val_acc,
        "test_accuracy": test_acc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "device": str(device),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
