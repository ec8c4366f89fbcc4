"""Champion/challenger bookkeeping for scheduled retraining.

``registry/champion/model.pt`` is the model in service: a stable path that
serving code loads with ``models.load_model``. Every retraining run leaves a
record in ``registry/runs/`` (run id, time, data digest, params, metrics,
promoted or not, and why), written atomically like every other output.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from models import load_model

from . import atomic
from .download import DatasetFiles
from .errors import MnistflowError
from .idx import read_idx
from .loaders import to_tensor_split
from .params import Params
from .train import evaluate_split

REGISTRY = Path("registry")
CHAMPION = REGISTRY / "champion"
RUNS = REGISTRY / "runs"
CODE_DIRS = ("mnistflow", "models", "tasks", "flows")


def code_digest(root: Path = Path(".")) -> str:
    """sha256 over the pipeline's Python sources: "the code is unchanged" means this is."""
    h = hashlib.sha256()
    for directory in CODE_DIRS:
        for path in sorted((root / directory).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(data_digest: str, params: Params) -> dict[str, str]:
    """What must all be unchanged for a retrain to be skipped."""
    return {"data": data_digest, "params": params.training_digest(), "code": code_digest()}


def read_champion() -> dict[str, Any] | None:
    path = CHAMPION / "record.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise MnistflowError(f"{path}: not valid JSON; restore it or delete registry/champion") from None


def test_accuracy(model_path: Path, files: DatasetFiles, device: torch.device) -> dict[str, float]:
    """Accuracy and loss of any saved model on this dataset's test set, with the
    model's own input scaling: champion and challenger are judged on the same images."""
    model, info = load_model(model_path)
    scaling = info["input_scaling"]
    test = to_tensor_split(read_idx(files.paths["test-images"], 3), read_idx(files.paths["test-labels"], 1),
                           device, scaling["mean"], scaling["std"])
    loss, accuracy, _ = evaluate_split(model.to(device), test)
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


def promote(model_path: Path, metrics_path: Path, record: dict[str, Any]) -> Path:
    """Install the challenger as champion. model.pt goes last, atomically, so a
    reader sees the old champion or the new one, never a mix."""
    CHAMPION.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(CHAMPION / "metrics.json", Path(metrics_path).read_bytes())
    atomic.write_json(CHAMPION / "record.json", record)
    atomic.write_bytes(CHAMPION / "model.pt", Path(model_path).read_bytes())
    return CHAMPION / "model.pt"


def write_run_record(record: dict[str, Any]) -> Path:
    stamp = record["time"].replace(":", "").replace("-", "")
    path = RUNS / f"{stamp}-{record['run_id']}.json"
    atomic.write_json(path, record)
    return path


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def version_with_dvc(message: str, push: bool = True) -> dict[str, Any]:
    """Record this run's data, checkpoint and metrics in dvc.lock and the DVC cache,
    push them to the default remote, and commit dvc.lock to git."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True)

    if not Path("dvc.yaml").exists() or not Path(".dvc").is_dir():
        return {"versioned": False, "why": "not a DVC repository"}
    steps = [(_tool("dvc"), "commit", "-f", "-q")] + ([(_tool("dvc"), "push", "-q")] if push else [])
    for step in steps:
        result = run(*step)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            raise MnistflowError(f"{' '.join(step[1:])} failed: {tail[0]}")
    out: dict[str, Any] = {"versioned": True, "pushed": push}
    if run("git", "rev-parse", "--git-dir").returncode == 0:
        run("git", "add", "dvc.lock")
        if run("git", "diff", "--cached", "--quiet", "--", "dvc.lock").returncode == 1:
            commit = run("git", "commit", "-q", "-m", message, "--", "dvc.lock")
            if commit.returncode != 0:
                raise MnistflowError(f"git commit of dvc.lock failed: {commit.stderr.strip()[:200]}")
        out["git_commit"] = run("git", "rev-parse", "HEAD").stdout.strip()
    return out
