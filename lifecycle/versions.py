"""Numbered champion versions, and putting an earlier one back (rollback).

Every promotion first keeps the new champion as ``<registry>/versions/<N>/``
(model, ONNX file, model card, metrics, evaluation and record), written whole
in a scratch folder and renamed in, and then installs it as
``<registry>/champion/``, all its files at once (lifecycle.install). A champion
promoted before versions existed is kept as a version before it is replaced. A
rollback installs an earlier version the same way, so the service switches at
its next request, and records why, by whom and from which version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from lifecycle.registry_paths import CHAMPION_FILES, RegistryPaths

from .install import install_files

FILES = tuple(CHAMPION_FILES)


def versions_dir(registry: RegistryPaths) -> Path:
    return registry.dir / "versions"


def version_numbers(registry: RegistryPaths) -> list[int]:
    root = versions_dir(registry)
    if not root.is_dir():
        return []
    # Only ASCII digits name a version: "²" and "٣" are digits to str.isdigit, not to int's readers.
    return sorted(int(d.name) for d in root.iterdir() if d.is_dir() and d.name.isascii() and d.name.isdigit())


def read_version(registry: RegistryPaths, number: int) -> dict[str, Any]:
    """A version's record, after checking its model is the one recorded."""
    folder = versions_dir(registry) / str(number)
    try:
        record = json.loads((folder / "record.json").read_text())
    except FileNotFoundError:
        have = ", ".join(map(str, version_numbers(registry))) or "none"
        raise MnistflowError(f"--to: no version {number} in {versions_dir(registry)} (versions: {have})") from None
    except ValueError:
        raise MnistflowError(f"{folder / 'record.json'}: not valid JSON") from None
    model = folder / "model.pt"
    if not model.exists() or atomic.sha256_of(model) != record.get("model_sha256"):
        raise MnistflowError(f"{model}: missing, or not the model recorded for version {number}; not installed")
    return record


def version_records(registry: RegistryPaths) -> dict[int, dict[str, Any]]:
    """Every readable version's record, by number (a damaged one is left out: read_version names it)."""
    records = {}
    for number in version_numbers(registry):
        try:
            records[number] = json.loads((versions_dir(registry) / str(number) / "record.json").read_text())
        except (OSError, ValueError):
            continue
    return records


def keep_version(registry: RegistryPaths, files: dict[str, bytes], record: dict[str, Any]) -> int:
    """Store ``files`` (name -> bytes; model.pt and record.json among them) as the next version."""
    number = (version_numbers(registry) or [0])[-1] + 1
    scratch = versions_dir(registry) / f".{number}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name, blob in files.items():
        atomic.write_bytes(scratch / name, blob)
    atomic.write_json(scratch / "record.json", {**record, "version": number})
    try:
        os.rename(scratch, versions_dir(registry) / str(number))
    except OSError:  # another promotion took this number first: there is one writer per registry
        shutil.rmtree(scratch, ignore_errors=True)
        raise MnistflowError(f"{versions_dir(registry) / str(number)}: already exists; is another promotion "
                             "running on this registry?") from None
    atomic.fsync_dir(versions_dir(registry))
    return number


def keep_unversioned_champion(registry: RegistryPaths) -> None:
    """A champion promoted before versions existed becomes a version before it is replaced."""
    path = registry.champion_record
    if not path.exists() or not registry.champion_model.exists():
        return
    record = json.loads(path.read_text())
    if "version" in record:
        return
    files = {name: (registry.champion / name).read_bytes() for name in FILES
             if name != "record.json" and (registry.champion / name).exists()}
    record["version"] = keep_version(registry, files, record)
    atomic.write_json(path, record)


def install(registry: RegistryPaths, number: int, record: dict[str, Any]) -> None:
    """Make version ``number`` the champion, with ``record`` as the champion's record: all
    its files switch at once (lifecycle.install), never the old champion's beside the new one."""
    folder = versions_dir(registry) / str(number)
    files = {name: folder / name for name in FILES if name != "record.json" and (folder / name).exists()}
    install_files(registry, number, files, record)


def list_versions(registry: RegistryPaths) -> list[dict[str, Any]]:
    """Each version: its number, when and by which run, its metrics and digests, and which is in service."""
    current = None
    if registry.champion_record.exists():
        current = json.loads(registry.champion_record.read_text()).get("version")
    rows = []
    for number in version_numbers(registry):
        try:
            record = json.loads((versions_dir(registry) / str(number) / "record.json").read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            rows.append({"version": number, "serving": number == current, "damaged": f"record.json: {reason}"[:120]})
            continue
        metrics = record.get("metrics") or {}
        rows.append({"version": number, "serving": number == current, "time": record.get("time"),
                     "run_id": record.get("run_id"), "source": record.get("source"),
                     "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
                     "recent_accuracy": (metrics.get("recent") or {}).get("accuracy"),
                     "data_digest": record.get("data_digest"),
                     "params_digest": (record.get("fingerprint") or {}).get("params"),
                     "model_sha256": record.get("model_sha256")})
    return rows


def previous_version(registry: RegistryPaths, current: int | None) -> int:
    earlier = [n for n in version_numbers(registry) if current is None or n < current]
    if not earlier:
        raise MnistflowError(f"no earlier version to roll back to in {versions_dir(registry)} "
                             f"(the champion is version {current}; versions: "
                             f"{', '.join(map(str, version_numbers(registry))) or 'none'})")
    return earlier[-1]
