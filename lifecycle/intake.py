"""Intake: candidates through the gate into one new, immutable increment of a dataset.

One intake at a time per dataset (a lock file beside the data, outside DVC's
folder): two intakes at once give two whole increments, the second gated against
the first. The increment is written in full in a scratch folder under the data
root and renamed into ``<dataset>/increments/`` last, so a killed intake leaves
no partial increment (its scratch folder is removed by the next intake).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mnistflow import atomic
from mnistflow.datasets import class_labels
from mnistflow.download import DatasetFiles
from mnistflow.idx import encode_idx, header_size, parse_header
from mnistflow.increments import IMAGES, LABELS, MANIFEST, increments_dir, item_sha256
from lifecycle.gate import Gate
from lifecycle.intake_sources import Candidate

SCRATCH = ".intake"


@dataclass
class IntakeReport:
    dataset: str
    sources: list[str]
    increment: str | None = None          # its id; None when nothing was accepted
    directory: str | None = None
    accepted: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    refused: list[dict[str, str]] = field(default_factory=list)  # {"origin", "reason"}, each one

    def summary(self) -> str:
        where = f"increment {self.increment} ({self.directory})" if self.increment else "no increment written"
        return f"{self.dataset}: {self.accepted} accepted, {len(self.refused)} refused; {where}"


@contextlib.contextmanager
def intake_lock(data_root: Path, dataset: str) -> Iterator[None]:
    """One intake of a dataset at a time, across processes (released if the holder dies)."""
    path = Path(data_root) / SCRATCH / f"{dataset}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clear_scratch(data_root: Path, dataset: str) -> None:
    # Under the lock: any scratch folder left is a killed intake's.
    for stale in (Path(data_root) / SCRATCH).glob(f"{dataset}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def increment_id(time: str, images: bytes, labels: bytes) -> str:
    stamp = time.replace("-", "").replace(":", "").replace(".", "").replace("+0000", "Z")
    return f"{stamp}-{hashlib.sha256(images + labels).hexdigest()[:8]}"


def gate_candidates(candidates: list[Candidate], gate: Gate) -> tuple[list[Candidate], list[dict[str, str]]]:
    accepted, refused = [], []
    for candidate in candidates:
        reason = candidate.refused or gate.refusal(candidate.pixels, candidate.origin)
        if reason:
            refused.append({"origin": candidate.origin, "reason": reason})
        else:
            accepted.append(candidate)
    return accepted, refused


def write_increment(files: DatasetFiles, data_root: Path, accepted: list[Candidate],
                    refused: list[dict[str, str]], sources: list[str], time: str) -> tuple[str, Path]:
    """The accepted items as one increment: written whole in scratch, then renamed in."""
    names = class_labels(files.dataset)
    images_idx = encode_idx(np.stack([c.pixels for c in accepted]))
    labels_idx = encode_idx(np.array([c.label for c in accepted], dtype=np.uint8))
    ident = increment_id(time, images_idx, labels_idx)
    scratch = Path(data_root) / SCRATCH / f"{files.dataset}-{ident}"
    scratch.mkdir(parents=True)
    for name, blob in ((IMAGES, images_idx), (LABELS, labels_idx)):
        atomic.write_bytes(scratch / name, blob)
    histogram = Counter(names[c.label] for c in accepted)
    atomic.write_json(scratch / MANIFEST, {
        "id": ident, "time": time, "dataset": files.dataset, "sources": sources,
        "shape": list(accepted[0].pixels.shape),
        "counts": {"offered": len(accepted) + len(refused), "accepted": len(accepted), "refused": len(refused)},
        "classes": {name: histogram.get(name, 0) for name in names},
        "files": {IMAGES: hashlib.md5(images_idx).hexdigest(), LABELS: hashlib.md5(labels_idx).hexdigest()},
        "items": [{"origin": c.origin, "label": names[c.label], "sha256": item_sha256(c.pixels)} for c in accepted],
        "refused": refused,
    })
    final = increments_dir(files.directory) / ident
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(scratch, final)  # the whole increment appears at once, or not at all
    atomic.fsync_dir(final.parent)
    return ident, final


def intake(dataset: str, files_of: Any, data_root: Path, candidates: list[Candidate], sources: list[str],
           time: str) -> IntakeReport:
    """Gate ``candidates`` against the dataset as it is once the lock is held, and write
    the accepted ones as one increment. ``files_of()`` gives the dataset's verified
    files (its increments read under the lock, so a concurrent intake's count)."""
    with intake_lock(data_root, dataset):
        files: DatasetFiles = files_of()
        _clear_scratch(data_root, files.dataset)
        accepted, refused = gate_candidates(candidates, Gate.of(files))
        report = IntakeReport(files.dataset, sources, refused=refused, accepted=len(accepted))
        if accepted:
            report.increment, directory = write_increment(files, data_root, accepted, refused, sources, time)
            report.directory = str(directory)
            names = class_labels(files.dataset)
            report.histogram = dict(sorted(Counter(names[c.label] for c in accepted).items()))
    return report


def take_from_inbox(inbox: Path, candidates: list[Candidate], batch: str) -> Path | None:
    """Move the inbox items this intake read (accepted or refused: the increment's
    manifest lists both) to ``<inbox>/taken/<batch>/``, so the inbox empties and
    nothing is read twice; nothing is deleted."""
    taken = inbox / "taken" / batch
    moved = 0
    for candidate in candidates:
        picture = Path(candidate.origin)
        if picture.parent != inbox:
            continue
        taken.mkdir(parents=True, exist_ok=True)
        for path in (picture.with_suffix(".json"), picture.with_suffix(".png")):
            if path.exists():
                os.replace(path, taken / path.name)
        moved += 1
    return taken if moved else None


def dataset_shape(files: DatasetFiles) -> tuple[int, int]:
    """The dataset's image shape, from the test images' IDX header alone (16 bytes, not 8 MB)."""
    path = files.paths["test-images"]
    with open(path, "rb") as handle:
        dims, _ = parse_header(path, handle.read(header_size(3)), 3)
    return dims[1], dims[2]
