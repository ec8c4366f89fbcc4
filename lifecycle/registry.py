"""Champion/challenger bookkeeping for scheduled retraining.

``<registry>/champion/model.pt`` is the model in service: a stable path that
serving code loads with ``mnistflow.checkpoints.load_model``. Every retraining
run leaves a record in ``<registry>/runs/`` (run id, time, data digest, params,
metrics, promoted or not, and why), written atomically like every other output.
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
from mnistflow.paths import RegistryPaths, RunPaths
from mnistflow.scoring import evaluate_tensors
from mnistflow.tensors import DeviceData, rescaled

from mnistflow.code import running_code_digest


def fingerprint(data_digest: str, params: Params) -> dict[str, str]:
    """What must all be unchanged for a retrain to be skipped."""
    return {"data": data_digest, "params": params.digest(), "code": running_code_digest()}


def read_champion(registry: RegistryPaths) -> dict[str, Any] | None:
    """The champion's record, after checking that its model.pt is the one promoted.

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
    recorded = record.get("model_sha256")
    if recorded is not None:
        model = registry.champion_model
        actual = atomic.sha256_of(model) if model.exists() else "missing"
        if actual != recorded:
            raise MnistflowError(
                f"{model}: sha256 {actual} is not the {recorded} recorded in {path} at promotion: the champion "
                f"was replaced or damaged. Restore it, or delete {registry.champion} to start without one")
    return record


def test_accuracy(model_path: Path, data: DeviceData) -> dict[str, float]:
    """Accuracy and loss of any saved model on the run's test tensors, under the
    model's own input scaling: champion and challenger are judged on the same images."""
    model, info = load_model(model_path)
    scaling = info["input_scaling"]
    test = rescaled(data.test, (data.mean, data.std), (scaling["mean"], scaling["std"]))
    loss, accuracy, _ = evaluate_tensors(model.to(data.test.x.device), test)
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
    """Install the run's model as champion. model.pt goes last, atomically, so a
    reader sees the old champion or the new one, never a mix; its sha256 goes in
    the record, checked on every later run."""
    model = run.model.read_bytes()
    atomic.write_bytes(registry.champion_metrics, run.metrics.read_bytes())
    atomic.write_bytes(registry.champion_evaluation, run.evaluation.read_bytes())
    # The champion's ONNX file and model card travel with it (when the run made
    # them), before model.pt: a service that sees the new model.pt finds them.
    for source, target in ((run.onnx, registry.champion_onnx), (run.card, registry.champion_card)):
        if source.exists():
            atomic.write_bytes(target, source.read_bytes())
        else:
            target.unlink(missing_ok=True)  # never leave the old champion's beside the new one
    atomic.write_json(registry.champion_record, {**record, "model_sha256": hashlib.sha256(model).hexdigest()})
    atomic.write_bytes(registry.champion_model, model)
    return registry.champion_model


def write_run_record(registry: RegistryPaths, record: dict[str, Any]) -> Path:
    stamp = record["time"].replace(":", "").replace("-", "")
    path = registry.runs / f"{stamp}-{record['run_id']}.json"
    atomic.write_json(path, record)
    return path


def now() -> str:
    """The one clock of every record: the registry's, the sweep's trials'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
