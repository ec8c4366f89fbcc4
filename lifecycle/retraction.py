"""Undoing a bad lesson: taking increments, or one client's items, out of the training data.

A retraction is a new data version: the retracted increment's folder leaves
``<dataset>/increments/`` (so `dvc status` shows the dataset changed, and `dvc
push` carries the new version), and is kept aside, whole, with a
``retraction.json`` saying when, why and by whom, in
``<data-root>/retracted/<dataset>/``. Retracting a client rewrites each
increment that holds its items as a new increment of the others' items, whose
manifest names the increment it replaces and the retraction; the old one is
kept aside the same way, after its replacement is whole (a retraction killed in
between is finished by the next one). Nothing is deleted, and sources are never
touched.

Which models learned from retracted data is known from the registry: each
version records the increments it trained on and the version it warm-started
from (``learned_increments``); the retrain never warm-starts from one whose
lineage holds an increment the dataset no longer has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mnistflow import atomic
from mnistflow.dataset_files import DatasetFiles
from mnistflow.errors import MnistflowError
from mnistflow.increments import Increment, increments_dir, load_increment

from .intake import clear_scratch, dataset_shape, intake_lock, manifest_of, write_increment
from .intake_sources import OPERATOR, Candidate

RETRACTED = "retracted"


def retracted_dir(data_root: Path, dataset: str) -> Path:
    return Path(data_root) / RETRACTED / dataset


def _set_aside(increment: Increment, data_root: Path, dataset: str, note: dict[str, Any]) -> Path:
    """Move an increment out of the dataset, whole, with the retraction's note beside its files."""
    aside = retracted_dir(data_root, dataset) / increment.id
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(increment.directory, aside)  # out of the dataset first: its folder is never changed in place
    atomic.fsync_dir(aside.parent)
    atomic.write_json(aside / "retraction.json", note)
    return aside


def _finish_interrupted(files: DatasetFiles, data_root: Path, dataset: str) -> None:
    """A retraction killed between writing an increment's replacement and setting the old one
    aside left both in the data: set the old one aside now."""
    present = {inc.id: inc for inc in files.increments}
    for increment in files.increments:
        if increment.id not in present:  # set aside a moment ago
            continue
        replaced = manifest_of(increment).get("replaces")
        if replaced in present:
            _set_aside(present.pop(replaced), data_root, dataset,
                       {"reason": f"replaced by {increment.id} (a retraction interrupted before it finished)"})


def _items(increment: Increment) -> list[dict[str, Any]]:
    return manifest_of(increment)["items"]


def retract(files_of: Any, data_root: Path, dataset: str, increment_ids: list[str], client: str | None,
            note: dict[str, Any], time: str) -> dict[str, Any]:
    """Retract ``increment_ids`` whole, and ``client``'s items from every increment; what was done."""
    with intake_lock(data_root, dataset):
        clear_scratch(data_root, dataset)
        _finish_interrupted(files_of(), data_root, dataset)
        files: DatasetFiles = files_of()
        by_id = {inc.id: inc for inc in files.increments}
        unknown = [i for i in increment_ids if i not in by_id]
        if unknown:
            have = ", ".join(by_id) or "none"
            raise MnistflowError(f"--retract: no increment {', '.join(unknown)} in {increments_dir(files.directory)} "
                                 f"(increments: {have})")
        touched = {i: [] for i in increment_ids}
        if client is not None:
            for inc in files.increments:
                if inc.id not in touched and any(item.get("client", OPERATOR) == client for item in _items(inc)):
                    touched[inc.id] = [client]
            if not any(touched.values()):
                raise MnistflowError(f"--retract-client: no item of {client!r} in any increment of {dataset}")
        done = {"time": time, **note, "retracted": [], "replaced_by": {}, "items": 0}
        for ident, clients in touched.items():
            increment = by_id[ident]
            items = _items(increment)
            keep = [item.get("client", OPERATOR) not in clients for item in items] if clients else [False] * len(items)
            done["items"] += keep.count(False)
            if any(keep):
                done["replaced_by"][ident] = _rewrite(files, data_root, increment, keep, note, time)
            _set_aside(increment, data_root, files.dataset, {**note, "time": time, "client": client})
            done["retracted"].append(ident)
    return done


def _rewrite(files: DatasetFiles, data_root: Path, increment: Increment, keep: list[bool], note: dict[str, Any],
             time: str) -> str:
    """A new increment of the items ``keep`` marks, naming the one it replaces."""
    images, labels = load_increment(increment, dataset_shape(files))
    items = _items(increment)
    mask = np.array(keep)
    candidates = [Candidate(item["origin"], image, int(label), client=item.get("client", OPERATOR))
                  for item, image, label, kept in zip(items, images, labels, mask) if kept]
    ident, _ = write_increment(files, data_root, candidates, [], manifest_of(increment).get("sources", []), time,
                                       extra={"replaces": increment.id, "retraction": {**note, "time": time}})
    return ident


def learned_increments(versions: dict[int, dict[str, Any]], number: int) -> set[str]:
    """Every increment version ``number`` learned from: its own training data's, and what the
    version it warm-started from learned (and so on back)."""
    seen: set[int] = set()
    learned: set[str] = set()
    while number is not None and number in versions and number not in seen:
        seen.add(number)
        record = versions[number]
        learned |= set(record.get("increments") or ())
        number = ((record.get("warm_start") or {}).get("version"))
    return learned
