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
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mnistflow import atomic
from mnistflow.datasets import class_labels
from mnistflow.dataset_files import DatasetFiles
from mnistflow.idx import encode_idx, header_size, parse_header
from mnistflow.increments import IMAGES, LABELS, MANIFEST, Increment, increments_dir, item_sha256
from mnistflow.inference import Predictor
from lifecycle import quarantine
from lifecycle.gate import Gate
from lifecycle.intake_sources import OPERATOR, Candidate
from lifecycle.trust import TrustPolicy, screen

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
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # lifecycle.quarantine's records
    waiting: list[dict[str, str]] = field(default_factory=list)  # over their client's share: left in the inbox
    clients: dict[str, int] = field(default_factory=dict)  # accepted items per client
    note: str = ""

    def summary(self) -> str:
        where = f"increment {self.increment} ({self.directory})" if self.increment else "no increment written"
        held = (f", {len(self.quarantined)} quarantined" if self.quarantined else "") + (
            f", {len(self.waiting)} waiting for their share" if self.waiting else "")
        return f"{self.dataset}: {self.accepted} accepted, {len(self.refused)} refused{held}; {where}"


@dataclass(frozen=True)
class Screening:
    """What intake needs to apply the trust rules (lifecycle.trust): the champion (None: none
    yet), its training increments (what counts as added since it), and the policy."""

    champion: Predictor | None
    threshold: float  # the champion's probability of a label under which an item is quarantined
    champion_increments: tuple[str, ...]
    policy: TrustPolicy = TrustPolicy()


def manifest_of(increment: Increment) -> dict[str, Any]:
    """An increment's manifest (read_increment checked it when the dataset was located)."""
    return json.loads((Path(increment.directory) / MANIFEST).read_text())


def added_per_client(files: DatasetFiles, champion_increments: tuple[str, ...]) -> Counter:
    """Items per client in the increments the champion has not learned from."""
    counts: Counter = Counter()
    for increment in files.increments:
        if increment.id not in champion_increments:
            counts.update(item.get("client", OPERATOR) for item in manifest_of(increment)["items"])
    return counts


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


def clear_scratch(data_root: Path, dataset: str) -> None:
    # Under the lock: any scratch folder left is a killed intake's.
    for stale in (Path(data_root) / SCRATCH).glob(f"{dataset}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def increment_id(time: str, images: bytes, labels: bytes) -> str:
    stamp = time.replace("-", "").replace(":", "").replace(".", "").replace("+0000", "Z")
    return f"{stamp}-{hashlib.sha256(images + labels).hexdigest()[:8]}"


def gate_candidates(candidates: list[Candidate], gate: Gate) -> tuple[list[Candidate], list[dict[str, str]]]:
    accepted, refused = [], []
    for candidate in candidates:
        reason = candidate.refused or gate.refusal(candidate.pixels, candidate.origin, candidate.frame)
        if reason:
            refused.append({"origin": candidate.origin, "reason": reason})
        else:
            accepted.append(candidate)
    return accepted, refused


def write_increment(files: DatasetFiles, data_root: Path, accepted: list[Candidate],
                    refused: list[dict[str, str]], sources: list[str], time: str,
                    extra: dict[str, Any] | None = None) -> tuple[str, Path]:
    """The accepted items as one increment: written whole in scratch, then renamed in.
    ``extra``: more for its manifest (a retraction's rewrite names what it replaces)."""
    names = class_labels(files.dataset)
    images_idx = encode_idx(np.stack([c.pixels for c in accepted]))
    labels_idx = encode_idx(np.array([c.label for c in accepted], dtype=np.uint8))
    ident = increment_id(time, images_idx, labels_idx)
    scratch = Path(data_root) / SCRATCH / f"{files.dataset}-{ident}"
    scratch.mkdir(parents=True)
    for name, blob in ((IMAGES, images_idx), (LABELS, labels_idx)):
        atomic.write_bytes(scratch / name, blob)
    histogram = Counter(names[c.label] for c in accepted)
    clients = Counter(c.client for c in accepted)
    atomic.write_json(scratch / MANIFEST, {
        "id": ident, "time": time, "dataset": files.dataset, "sources": sources,
        "shape": list(accepted[0].pixels.shape),
        "counts": {"offered": len(accepted) + len(refused), "accepted": len(accepted), "refused": len(refused)},
        "classes": {name: histogram.get(name, 0) for name in names},
        "files": {IMAGES: hashlib.md5(images_idx).hexdigest(), LABELS: hashlib.md5(labels_idx).hexdigest()},
        "clients": dict(sorted(clients.items())),
        "items": [{"origin": c.origin, "label": names[c.label], "sha256": item_sha256(c.pixels), "client": c.client}
                  for c in accepted],
        "refused": refused,
        **(extra or {}),
    })
    final = increments_dir(files.directory) / ident
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(scratch, final)  # the whole increment appears at once, or not at all
    atomic.fsync_dir(final.parent)
    return ident, final


def intake(dataset: str, files_of: Any, data_root: Path, candidates: list[Candidate], sources: list[str],
           time: str, screening: Screening | None = None) -> IntakeReport:
    """Gate ``candidates`` against the dataset as it is once the lock is held, apply the trust
    rules (``screening``; None: none), and write the accepted ones as one increment.
    ``files_of()`` gives the dataset's verified files (its increments read under the lock,
    so a concurrent intake's count)."""
    with intake_lock(data_root, dataset):
        files: DatasetFiles = files_of()
        clear_scratch(data_root, files.dataset)
        accepted, refused = gate_candidates(candidates, Gate.of(files))
        report = IntakeReport(files.dataset, sources, refused=refused)
        if screening is not None:
            screened = screen(accepted, screening.champion, screening.threshold,
                              added_per_client(files, screening.champion_increments), screening.policy)
            accepted, report.waiting, report.note = screened.accepted, screened.waiting, screened.note
            batch = increment_id(time, b"quarantine", "".join(c.origin for c in candidates).encode())
            report.quarantined = quarantine.keep(data_root, files.dataset, batch, screened.quarantined, time)
        report.accepted = len(accepted)
        if accepted:
            report.increment, directory = write_increment(files, data_root, accepted, refused, sources, time)
            report.directory = str(directory)
            names = class_labels(files.dataset)
            report.histogram = dict(sorted(Counter(names[c.label] for c in accepted).items()))
            report.clients = dict(sorted(Counter(c.client for c in accepted).items()))
    return report


def take_from_inbox(inbox: Path, candidates: list[Candidate], batch: str, waiting: list[dict[str, str]] = ()
                    ) -> Path | None:
    """Move the inbox items this intake decided on (accepted, refused or quarantined: the
    increment's manifest and the quarantine list them) to ``<inbox>/taken/<batch>/``, so the
    inbox empties and nothing is read twice; nothing is deleted. Items ``waiting`` for their
    client's share stay, for a later intake."""
    taken = inbox / "taken" / batch
    stays = {item["origin"] for item in waiting}
    moved = 0
    for candidate in candidates:
        picture = Path(candidate.origin)
        if picture.parent != inbox or candidate.origin in stays:
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
