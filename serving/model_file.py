"""Which model file the service and the predict CLI answer with, and the files that describe it.

The champion (the model in service) when there is one, else the run's model;
``--model PATH`` overrides both. Why this one (``ModelFiles.why``) is logged in
one line once the model loads, so a newer ``outputs/model.pt`` quietly losing
to the champion is never a surprise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lifecycle.registry_paths import RegistryPaths

from mnistflow.paths import RunPaths

@dataclass(frozen=True)
class ModelFiles:
    """A model file, and where its metrics and model card live."""

    model: Path
    metrics: Path
    evaluation: Path
    card: Path
    why: str = ""  # why this model: the line the service and predict log; empty when given by hand
    # The name the service shows over HTTP: relative to the registry or the run folder
    # (``champion/model.pt``, ``model.pt``), never an absolute path of the machine.
    shown: str = ""

    @property
    def name(self) -> str:
        return self.shown or self.model.name

    @classmethod
    def of_run(cls, run: RunPaths, why: str = "") -> "ModelFiles":
        return cls(run.model, run.metrics, run.evaluation, run.card, why, run.model.name)

    @classmethod
    def of_champion(cls, registry: RegistryPaths, why: str = "") -> "ModelFiles":
        return cls(registry.champion_model, registry.champion_metrics, registry.champion_evaluation,
                   registry.champion_card, why, registry.champion_model.relative_to(registry.dir).as_posix())

    @classmethod
    def given(cls, model: Path) -> "ModelFiles":
        """A model file named by hand: its metrics and card are looked for beside it,
        under the names a run folder (and the champion's folder) gives them."""
        run = RunPaths(Path(model).parent)
        return cls(Path(model), run.metrics, run.evaluation, run.card)  # the file named, whatever its name


def choose_model(given: Path | None, registry: RegistryPaths, run: RunPaths) -> ModelFiles:
    if given is not None:
        return ModelFiles.given(given)  # the user's own choice needs no word
    champion = registry.champion_model
    if champion.exists():
        newer = run.model.exists() and run.model.stat().st_mtime > champion.stat().st_mtime
        return ModelFiles.of_champion(registry, f"model: the champion {champion}" + (
            f" (not the newer {run.model}: pass --model to use it)" if newer else ""))
    if run.model.exists():
        return ModelFiles.of_run(run, f"model: {run.model} (no champion in {registry.dir})")
    # Nothing to serve yet: wait, unready, for the champion (the first promotion).
    return ModelFiles.of_champion(registry, f"no model yet: waiting, unready, for the champion {champion} "
                                            f"(or pass --model)")
