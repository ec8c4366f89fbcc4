"""Where every output lives: one folder, the same for the flow and for DVC."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outputs:
    root: Path = Path(".")

    @property
    def dir(self) -> Path:
        return self.root / "outputs"

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
    def history(self) -> Path:
        return self.dir / "history.csv"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.dir / "predictions.csv"

    @property
    def plots(self) -> Path:
        return self.dir / "plots"
