"""Which model file the service and the predict CLI answer with, and the files that describe it.

The champion (the model in service) when there is one, else the run's model;
``--model PATH`` overrides both. The choice is logged in one line, so a newer
``outputs/model.pt`` quietly losing to the champion is never a surprise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mnistflow.paths import RegistryPaths, RunPaths

log = logging.getLogger("mnistflow")


@dataclass(frozen=True)
class ModelFiles:
    """A model file, and where its metrics and model card live."""

    model: Path
    metrics: Path
    card: Path
    source: str  # "champion", "run" or "given": for the log line and /model

    @classmethod
    def of_run(cls, run: RunPaths, source: str = "run") -> "ModelFiles":
        return cls(run.model, run.metrics, run.card, source)

    @classmethod
    def of_champion(cls, registry: RegistryPaths) -> "ModelFiles":
        return cls(registry.champion_model, registry.champion_metrics, registry.champion_card, "champion")

    @classmethod
    def given(cls, model: Path) -> "ModelFiles":
        """A model file named by hand: its metrics and card are looked for beside it,
        under the names a run folder (and the champion's folder) gives them."""
        return cls.of_run(RunPaths(Path(model).parent), "given")


def choose_model(given: Path | None, registry: RegistryPaths, run: RunPaths) -> ModelFiles:
    if given is not None:
        return ModelFiles.given(given)  # the user's own choice needs no word
    if registry.champion_model.exists():
        chosen = ModelFiles.of_champion(registry)
        newer = run.model.exists() and run.model.stat().st_mtime > chosen.model.stat().st_mtime
        log.info("model: the champion %s%s", chosen.model,
                 f" (not the newer {run.model}: pass --model to use it)" if newer else "")
    else:
        chosen = ModelFiles.of_run(run)
        log.info("model: %s (no champion in %s)", chosen.model, registry.dir)
    return chosen
