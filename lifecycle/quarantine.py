"""The quarantine: items whose label the champion found implausible, kept until a person decides.

``<data-root>/quarantine/<dataset>/<batch>/<n>.png`` is the item as the model
sees it (the prepared pixels), and ``<n>.json`` its record: where it came from,
its client, the claimed label, the champion's probability of it and top 3, the
reason, and, once decided, the decision (accepted or rejected, by whom, when).
It lies outside the dataset's DVC folder: nothing in it is training data until
a reviewer accepts it, and then it enters through intake as a new increment.
Nothing here is ever deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from pictures.imaging import decode_image, png_bytes

from .intake_sources import Candidate

QUARANTINE = "quarantine"


def quarantine_dir(data_root: Path, dataset: str) -> Path:
    return Path(data_root) / QUARANTINE / dataset


def keep(data_root: Path, dataset: str, batch: str, items: list[dict[str, Any]], time: str) -> list[dict[str, Any]]:
    """Write each quarantined item (its ``candidate`` and what ``trust.plausibility`` said); their records."""
    folder = quarantine_dir(data_root, dataset) / batch
    records = []
    for n, item in enumerate(items):
        candidate: Candidate = item["candidate"]
        record = {k: v for k, v in item.items() if k != "candidate"}
        record.update(id=f"{batch}/{n}", time=time, dataset=dataset, decision=None)
        atomic.write_bytes(folder / f"{n}.png", png_bytes(candidate.pixels))
        atomic.write_json(folder / f"{n}.json", record)  # the record last: a reader that sees it finds the picture
        records.append(record)
    return records


def _record_path(data_root: Path, dataset: str, item_id: str) -> Path:
    batch, _, n = item_id.partition("/")
    folder = quarantine_dir(data_root, dataset)
    path = folder / batch / f"{n}.json"
    if not (batch and n.isascii() and n.isdigit()) or path.resolve().parent.parent != folder.resolve():
        raise MnistflowError(f"{item_id!r}: not a quarantined item's id (BATCH/N, as --review lists them)")
    if not path.is_file():
        raise MnistflowError(f"{item_id}: no such quarantined item in {folder}")
    return path


def pending(data_root: Path, dataset: str) -> list[dict[str, Any]]:
    """Every quarantined item no one has decided on, oldest first."""
    folder = quarantine_dir(data_root, dataset)
    records = []
    for path in sorted(folder.glob("*/*.json"), key=lambda p: (p.parent.name, int(p.stem) if p.stem.isdigit() else 0)):
        record = json.loads(path.read_text())
        if record.get("decision") is None:
            records.append(record)
    return records


def picture_of(data_root: Path, dataset: str, item_id: str) -> Path:
    return _record_path(data_root, dataset, item_id).with_suffix(".png")


def candidate_of(data_root: Path, dataset: str, record: dict[str, Any], classes: list[str]) -> Candidate:
    """A quarantined item as intake's candidate again: its prepared pixels, claimed label and client."""
    path = picture_of(data_root, dataset, record["id"])
    pixels = decode_image(path.read_bytes(), str(path))
    return Candidate(f"quarantine:{record['id']}", pixels, classes.index(record["label"]), client=record["client"])


def decide(data_root: Path, dataset: str, item_ids: list[str], accepted: bool, by: dict[str, Any],
           time: str) -> list[dict[str, Any]]:
    """Record a person's decision on each item (who, when, which); the records, updated."""
    paths = [_record_path(data_root, dataset, i) for i in item_ids]  # every id checked before anything is written
    records = []
    for path in paths:
        record = json.loads(path.read_text())
        if record.get("decision") is not None:
            raise MnistflowError(f"{record['id']}: already {'accepted' if record['decision']['accepted'] else 'rejected'}"
                                 f" by {record['decision']['by'].get('reviewer')} at {record['decision']['time']}")
        records.append((path, record))
    for path, record in records:
        record["decision"] = {"accepted": accepted, "by": by, "time": time}
        atomic.write_json(path, record)
    return [record for _, record in records]
