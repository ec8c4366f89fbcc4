"""A search's Optuna study: where it lives, how it samples and prunes, and how a trial
reports to it from a Dask worker.

The study lives in the sweep's folder, in Optuna's journal file storage
(``<runs>/<sweep>/study.journal``): an append-only log of every ask, report and
tell, with a file lock, so no database server is needed, several processes share
it safely, and a sweep killed at any point and started again continues the same
study: the sampler's history and the pruners' intermediate values are in the log.
(The TPE sampler's random state is not: a restarted search reseeds it with its
seed plus the number of trials so far, so it does not draw its first guesses again.)

On a Dask cluster that spans machines the journal file must be on storage every
worker mounts (NFS, a shared volume); Optuna's file lock works there through
``JournalFileSymlinkLock``, which this module uses (docs/operations.md, "Search").

Why Optuna: TPE, the pruners and the journal are Optuna's own, kept up by its
project and read by ``optuna-dashboard``; the trial runs stay mnistflow's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnistflow.errors import MnistflowError

from .search_spec import Choices, IntegerRange, Search
from .sweep_spec import SELECTABLE

JOURNAL = "study.journal"


class Pruned(MnistflowError):
    """A trial the pruner stopped, at the end of an epoch (a user's decision, never retried)."""

    def __init__(self, epoch: int, metric: str, value: float) -> None:
        super().__init__(f"pruned at epoch {epoch} ({metric} {value:.4f})")
        self.epoch, self.metric, self.value = epoch, metric, value


def storage(sweep_dir: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    path = Path(sweep_dir) / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileSymlinkLock(str(path))))


def open_study(name: str, search: Search, select: str, sweep_dir: Path, max_epochs: int) -> Any:
    """The sweep's study, created or continued."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the flow's log says what happened, once
    kept = storage(sweep_dir)
    try:
        earlier = len(kept.get_all_trials(kept.get_study_id_from_name(name), deepcopy=False))
    except KeyError:
        earlier = 0
    seed = search.seed + earlier
    # Multivariate TPE models the parameters jointly (lr and batch size interact); the
    # constant liar counts a running trial as a bad one, so that two workers asking at
    # once are not handed the same point.
    sampler = (optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials, multivariate=True,
                                          constant_liar=True) if search.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    return optuna.create_study(study_name=name, storage=kept, sampler=sampler, load_if_exists=True,
                               pruner=pruner(search, max_epochs),
                               direction="maximize" if SELECTABLE[select] else "minimize")


def pruner(search: Search, max_epochs: int) -> Any:
    import optuna

    chosen = search.pruner
    if chosen.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=chosen.min_resource,
                                                      reduction_factor=chosen.reduction_factor)
    if chosen.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=chosen.min_resource, max_resource=max_epochs,
                                              reduction_factor=chosen.reduction_factor)
    return optuna.pruners.NopPruner()


def suggest(trial: Any, search: Search) -> dict[str, Any]:
    """The trial's overrides, drawn from the space. Choices go to Optuna as their JSON text:
    it takes only scalars as categories, and a choice may be a list (``model.hidden``)."""
    overrides: dict[str, Any] = {}
    for key, space in sorted(search.params.items()):
        if isinstance(space, Choices):
            overrides[key] = json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in space.choices]))
        elif isinstance(space, IntegerRange):
            overrides[key] = trial.suggest_int(key, int(space.low), int(space.high), step=space.step, log=space.log)
        else:
            overrides[key] = trial.suggest_float(key, space.low, space.high, log=space.log)
    return overrides


def overrides_of(frozen: Any, search: Search) -> dict[str, Any]:
    """An earlier trial's overrides, from what the study kept (a resumed trial's)."""
    return {key: json.loads(value) if isinstance(search.params[key], Choices) else value
            for key, value in sorted(frozen.params.items()) if key in search.params}


class Reporter:
    """Reports a trial's validation metric after every epoch, from wherever the trial runs,
    and stops it (``Pruned``) when the study's pruner says so."""

    def __init__(self, sweep_dir: Path, name: str, trial_id: int, select: str, search: Search,
                 max_epochs: int) -> None:
        self.sweep_dir, self.name, self.trial_id, self.select = Path(sweep_dir), name, trial_id, select
        self.search, self.max_epochs = search, max_epochs
        self._trial: Any = None

    def __call__(self, report: Any) -> None:
        import optuna

        if self._trial is None:  # the study's own pruner, as the sweep made it
            study = optuna.load_study(study_name=self.name, storage=storage(self.sweep_dir),
                                      pruner=pruner(self.search, self.max_epochs))
            self._trial = optuna.trial.Trial(study, self.trial_id)
        value = report.val_accuracy if self.select == "val_accuracy" else report.val_loss
        self._trial.report(value, report.epoch)
        if self._trial.should_prune():
            raise Pruned(report.epoch, self.select, value)
