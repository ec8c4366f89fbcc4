"""Where the registry keeps things: the champion in service, its numbered versions,
one record per retraining run, and the service's inbox. The registry's root is
chosen by an entry point (``mnistflow.paths.roots``) and handed down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What a version, and so the champion, holds, each with the run's file it comes from
# (``mnistflow.paths.RunPaths``; None: the registry writes it). The first three every
# promoted run has; the others travel with it when the run made them. model.pt last:
# the file a reader looks for first is copied last.
CHAMPION_FILES = {"metrics.json": "metrics", "evaluation.json": "evaluation", "profile.json": "profile",
                  "model.onnx": "onnx", "MODEL_CARD.md": "card", "record.json": None, "model.pt": "model"}
REQUIRED = ("model.pt", "metrics.json", "evaluation.json")


@dataclass(frozen=True)
class RegistryPaths:
    """The champion in service and one record per retraining run."""

    dir: Path

    @property
    def champion(self) -> Path:
        return self.dir / "champion"

    @property
    def champion_model(self) -> Path:
        return self.champion / "model.pt"

    @property
    def champion_onnx(self) -> Path:
        return self.champion / "model.onnx"

    @property
    def champion_card(self) -> Path:
        return self.champion / "MODEL_CARD.md"

    @property
    def champion_record(self) -> Path:
        return self.champion / "record.json"

    @property
    def champion_metrics(self) -> Path:
        return self.champion / "metrics.json"

    @property
    def champion_evaluation(self) -> Path:
        return self.champion / "evaluation.json"

    @property
    def champion_profile(self) -> Path:
        return self.champion / "profile.json"

    @property
    def shadow(self) -> Path:
        # A challenger answering beside the champion on live traffic, before it serves (lifecycle.shadow).
        return self.dir / "shadow"

    @property
    def shadow_model(self) -> Path:
        return self.shadow / "model.pt"

    @property
    def shadow_record(self) -> Path:
        return self.shadow / "record.json"

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    @property
    def inbox(self) -> Path:
        # Corrections from the service's page, waiting for intake (serving/inbox.py).
        return self.dir / "inbox"
