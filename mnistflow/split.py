"""The split stage: a seeded random hold-out of the training set for validation.

numpy's PCG64 ``Generator`` gives the same permutation for the same seed on
every platform, so the split is a pure function of (seed, size, fraction). It
is recorded in full (the validation indices) so any later run can be audited.

Added data (``mnistflow.increments``) does not join that permutation: growing it
would move about a fifth of the old validation images into training, and make
every earlier validation number incomparable. The base split stays exactly as
it was, and each added item goes to validation by its content hash alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import atomic
from .dataset_files import DatasetFiles
from .errors import MnistflowError
from .idx import read_idx
from .increments import Increment, in_validation
from .params import DataParams


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_val = int(round(n * val_fraction))
    if not 0 < n_val < n:
        raise MnistflowError(
            f"data.val_fraction: {val_fraction} of {n} training images leaves "
            f"{n_val} for validation and {n - n_val} for training; both must be at least 1"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_split(files: DatasetFiles, data: DataParams, path: Path) -> Path:
    labels = read_idx(files.paths["train-labels"], 1)
    train_idx, val_idx = split_indices(len(labels), data.val_fraction, data.seed)
    record = {
        "dataset": files.dataset,
        "dataset_digest": files.digest,
        "seed": data.seed,
        "val_fraction": data.val_fraction,
        "train_size": int(len(train_idx)),
        "val_size": int(len(val_idx)),
        "val_indices_sha256": hashlib.sha256(val_idx.astype("<i8").tobytes()).hexdigest(),
        "val_indices": val_idx.tolist(),
    }
    if files.increments:  # only then: a split made before increments existed keeps its bytes
        record["increments"] = [increment_split(inc, data.val_fraction) for inc in files.increments]
    atomic.write_json(path, record)
    return path


def increment_split(increment: Increment, val_fraction: float) -> dict:
    """Which of an increment's items are held out for validation (their positions in it)."""
    val = [i for i, sha in enumerate(increment.item_sha256) if in_validation(sha, val_fraction)]
    return {"id": increment.id, "train_size": len(increment.item_sha256) - len(val), "val_size": len(val),
            "val_indices": val}


def read_split(path: Path, files: DatasetFiles) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        record = json.loads(Path(path).read_text())
        val_idx = np.asarray(record["val_indices"], dtype=np.int64)
    except FileNotFoundError:
        raise MnistflowError(f"{path}: missing (run the split step first)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise MnistflowError(f"{path}: not a split record ({exc})") from None
    if record.get("dataset_digest") != files.digest:
        raise MnistflowError(f"{path}: made for other data; run the split step again")
    n = record["train_size"] + record["val_size"]
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx, record
