"""Champion/challenger bookkeeping for scheduled retraining.

``<registry>/champion/model.pt`` is the model in service: a stable path that
serving code loads with ``mnistflow.checkpoints.load_model``. Every retraining
run (and every rollback) leaves a record in ``<registry>/runs/`` (run id, time,
data digest, params, metrics, promoted or not, and why), written atomically like
every other output. Every champion is also kept as a numbered version
(``<registry>/versions/``, lifecycle.versions), which ``rollback`` puts back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnistflow import atomic
from mnistflow.checkpoints import load_model
from mnistflow.errors import MnistflowError
from mnistflow.params import Params
from lifecycle.registry_paths import CHAMPION_FILES, REQUIRED, RegistryPaths
from mnistflow.paths import RunPaths
from mnistflow.scoring import evaluate_tensors
from mnistflow.tensors import DeviceData, LabelledTensors, rescaled

from mnistflow.code import running_code_digest

from . import versions


def fingerprint(data_digest: str, params: Params) -> dict[str, str]:
    """What must all be unchanged for a retrain to be skipped."""
    return {"data": data_digest, "params": params.digest(), "code": running_code_digest()}


def read_champion(registry: RegistryPaths) -> dict[str, Any] | None:
    """The champion's record, after checking that its model.pt (and every file it records) is the one promoted.

    A champion replaced or damaged behind the registry's back stops the run: it
    is not quietly judged, kept in service, or overwritten.
    """
    path = registry.champion_record
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise MnistflowError(f"{path}: not valid JSON; restore it or delete {registry.champion}") from None
    # Every file the record names (model.pt always; all of them since promotions record each).
    expected = {**(record.get("files") or {}), "model.pt": record.get("model_sha256")}
    for name, recorded in sorted(expected.items(), key=lambda item: item[0] != "model.pt"):
        if recorded is None:
            continue
        file = registry.champion / name
        if not file.exists():
            raise MnistflowError(
                f"{file}: missing, though {path} records a champion with it (sha256 {recorded}): the champion was deleted. "
                f"Restore it, or delete {registry.champion} to start without one")
        actual = atomic.sha256_of(file)
        if actual != recorded:
            raise MnistflowError(
                f"{file}: sha256 {actual} is not the {recorded} recorded in {path} at promotion: the champion "
                f"was replaced or damaged. Restore it, or delete {registry.champion} to start without one")
    return record


def test_accuracy(model_path: Path, data: DeviceData, tensors: LabelledTensors | None = None) -> dict[str, float]:
    """Accuracy and loss of any saved model on the run's test tensors (or ``tensors`` of the
    same run, such as its recent data), under the model's own input scaling: champion and
    challenger are judged on the same images."""
    model, info = load_model(model_path)
    scaling = info["input_scaling"]
    images = rescaled(data.test if tensors is None else tensors, (data.mean, data.std), (scaling["mean"], scaling["std"]))
    loss, accuracy, _ = evaluate_tensors(model.to(data.test.x.device), images)
    return {"accuracy": accuracy, "loss": loss}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_accuracy: float
    champion_accuracy: float | None


def decide(challenger: float, champion: float | None, margin: float) -> Decision:
    if champion is None:
        return Decision(True, "no champion yet", challenger, None)
    needed = champion + margin
    if challenger >= needed:
        return Decision(True, f"challenger test accuracy {challenger:.4%} >= champion {champion:.4%}"
                              f" + margin {margin:+.4%}", challenger, champion)
    return Decision(False, f"challenger test accuracy {challenger:.4%} < champion {champion:.4%}"
                           f" + margin {margin:+.4%}; champion kept", challenger, champion)


def judge(challenger_model: Path, registry: RegistryPaths, data: DeviceData, margin: float) -> Decision:
    challenger = test_accuracy(challenger_model, data)["accuracy"]
    champion_path = registry.champion_model
    champion = test_accuracy(champion_path, data)["accuracy"] if champion_path.exists() else None
    return decide(challenger, champion, margin)


def promote(run: RunPaths, registry: RegistryPaths, record: dict[str, Any]) -> Path:
    """Keep the run's model as the next numbered version (lifecycle.versions), then
    install it as champion in one switch (lifecycle.install), so a reader sees the
    old champion or the new one, never a mix; every file's sha256 goes in the
    record, checked on every later run."""
    versions.keep_unversioned_champion(registry)
    files = {name: getattr(run, field).read_bytes() for name, field in CHAMPION_FILES.items()
             if field and (name in REQUIRED or getattr(run, field).exists())}
    record = {**record, "model_sha256": hashlib.sha256(files["model.pt"]).hexdigest(),
              "files": {name: hashlib.sha256(blob).hexdigest() for name, blob in sorted(files.items())}}
    number = versions.keep_version(registry, files, record)
    versions.install(registry, number, {**record, "version": number})
    append_history(registry, {"event": "promotion", "version": number, "run_id": record.get("run_id"),
                              "reason": record.get("reason"), "metrics": record.get("metrics"),
                              "trigger": record.get("trigger"), "increments": record.get("increments")})
    return registry.champion_model


def rollback(registry: RegistryPaths, to: int | None, reason: str, by: dict[str, Any]) -> dict[str, Any]:
    """Put version ``to`` (default: the one before the champion's) back as champion, and
    record it: in the champion's record and as a run record of its own."""
    champion = read_champion(registry)
    current = champion.get("version") if champion else None
    target = to if to is not None else versions.previous_version(registry, current)
    if target == current:
        raise MnistflowError(f"--to: version {target} is already the champion")
    restored = versions.read_version(registry, target)
    event = {"time": now(), "from_version": current, "to_version": target, "reason": reason, "by": by,
             "from_model_sha256": (champion or {}).get("model_sha256"), "model_sha256": restored["model_sha256"]}
    versions.install(registry, target, {**restored, "rolled_back": event})
    append_history(registry, {"event": "rollback", "version": target, "from_version": current, "reason": reason,
                              "by": by, "metrics": restored.get("metrics")})
    write_run_record(registry, {"run_id": by.get("flow_run_id") or "local", "source": "rollback",
                                "trained": False, "promoted": True, **event})
    return event


# The history's events that change which version serves (a shadow's come and go beside it).
SERVING_EVENTS = ("promotion", "rollback")


def history_path(registry: RegistryPaths) -> Path:
    return registry.dir / "history.jsonl"


def append_history(registry: RegistryPaths, entry: dict[str, Any]) -> None:
    """One line of the audit trail: which version started serving when, and why (every promotion
    and rollback). Rewritten whole and renamed in, like every file here, so a reader never sees half a line."""
    path = history_path(registry)
    before = path.read_bytes() if path.exists() else b""
    line = json.dumps({"time": now(), **entry}, sort_keys=True) + "\n"
    atomic.write_bytes(path, before + line.encode())


def read_history(registry: RegistryPaths) -> list[dict[str, Any]]:
    path = history_path(registry)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise MnistflowError(f"{path} line {number}: not a JSON line; restore the file") from None
    return entries


def serving_at(registry: RegistryPaths, when: datetime) -> dict[str, Any] | None:
    """The history entry of the version that served at ``when`` (aware), or None before the first."""
    earlier = [e for e in read_history(registry) if e["event"] in SERVING_EVENTS
               and datetime.fromisoformat(e["time"]) <= when]
    return earlier[-1] if earlier else None


def write_run_record(registry: RegistryPaths, record: dict[str, Any]) -> Path:
    stamp = record["time"].replace(":", "").replace("-", "")
    path = registry.runs / f"{stamp}-{record['run_id']}.json"
    atomic.write_json(path, record)
    return path


def now() -> str:
    """The one clock of every record: the registry's, the sweep's trials'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
