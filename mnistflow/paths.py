"""Where a run's files live. Entry points decide the folders; steps are handed them.

Three roots, each chosen once by an entry point (a flow parameter, a CLI flag, a
DVC stage's ``cmd``) and passed down:

- the run folder (default ``outputs/``): split, checkpoints, model, metrics, plots;
- the data root (default ``data/``): one verified folder per dataset, shared read-only;
- the registry (default ``registry/``): the champion and the retraining records.

Defaults are relative, so they land in the folder the entry point runs from (the
repository root for ``make``, ``dvc repro`` and a deployment's worker). The data
and registry roots can also be set for a whole machine with ``MNISTFLOW_DATA_ROOT``
and ``MNISTFLOW_REGISTRY``; ``roots()`` is the one place that reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN_DIR = Path("outputs")
DEFAULT_DATA_ROOT = Path("data")
DEFAULT_REGISTRY = Path("registry")
DATA_ROOT_ENV = "MNISTFLOW_DATA_ROOT"
REGISTRY_ENV = "MNISTFLOW_REGISTRY"


@dataclass(frozen=True)
class RunPaths:
    """Every file of one run, under one folder."""

    dir: Path

    @classmethod
    def entry_names(cls) -> list[str]:
        """The names of every file and folder a run folder holds (its properties' last parts)."""
        run = cls(Path("run"))
        return [getattr(run, name).name for name, value in vars(cls).items() if isinstance(value, property)
                and getattr(run, name).parent == run.dir]

    @property
    def split(self) -> Path:
        return self.dir / "split.json"

    @property
    def checkpoints(self) -> Path:
        # Kept apart from model.pt so DVC can persist it across reruns (resume).
        return self.dir / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def model(self) -> Path:
        return self.dir / "model.pt"

    @property
    def training(self) -> Path:
        # How long training took and where: the one output whose bytes vary between runs.
        return self.dir / "training.json"

    @property
    def onnx(self) -> Path:
        return self.dir / "model.onnx"

    @property
    def model_repository(self) -> Path:
        # The ONNX file again, in the layout Triton and KServe load (mnistflow.model_repository).
        return self.dir / "model_repository"

    @property
    def export_check(self) -> Path:
        return self.dir / "export.json"

    @property
    def card(self) -> Path:
        return self.dir / "MODEL_CARD.md"

    @property
    def history(self) -> Path:
        return self.dir / "history.csv"

    @property
    def metrics(self) -> Path:
        # The few numbers people compare (DVC's metrics file): accuracy and loss.
        return self.dir / "metrics.json"

    @property
    def evaluation(self) -> Path:
        # Everything else the evaluation records: per class, confusion, the ONNX check, digests, versions.
        return self.dir / "evaluation.json"

    @property
    def profile(self) -> Path:
        # What the model sees and says on validation: the baseline of the drift check.
        return self.dir / "profile.json"

    @property
    def predictions(self) -> Path:
        return self.dir / "predictions.csv"

    @property
    def plots(self) -> Path:
        return self.dir / "plots"


@dataclass(frozen=True)
class Roots:
    data_root: Path
    registry: Path


def roots(data_root: str | os.PathLike[str] | None = None, registry: str | os.PathLike[str] | None = None,
          env: dict[str, str] | None = None) -> Roots:
    """The data and registry roots: given > environment > default."""
    env = os.environ if env is None else env
    return Roots(
        data_root=Path(data_root if data_root is not None else env.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT),
        registry=Path(registry if registry is not None else env.get(REGISTRY_ENV) or DEFAULT_REGISTRY),
    )
