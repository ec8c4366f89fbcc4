"""A sweep's search: Optuna's study chooses each next trial from the earlier ones, and its
pruner stops a hopeless trial at the end of an epoch (lifecycle.study).

The flow keeps ``workers`` trials in flight on the sweep's Dask cluster: it asks
the study for a trial's parameters, runs the trial as the grid's trials run
(``flows.trials.trial_task``: the training flow's own tasks, in its own run
folder), and tells the study how it ended. A trial reports its validation metric
after every epoch from its worker, straight to the study's journal. Started
again after a kill, the search first resumes the trials the study still has
running (from their checkpoints), then asks for new ones until the study holds
``search.trials`` trials: finished trials are never run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.trials import outcome, trial_task
from lifecycle.leaderboard import read_record
from lifecycle.search_report import importances, plot_search, search_markdown
from lifecycle.search_spec import Search
from lifecycle.study import Reporter, open_study, overrides_of, suggest
from lifecycle.sweep_spec import SweepSpec, Trial, make_trial, one_line
from mnistflow.dataset_files import DatasetFiles
from mnistflow import atomic
from mnistflow.errors import MnistflowError
from tasks import best_effort


def search_trial_id(number: int) -> str:
    return f"s{number:04d}"


def max_epochs(base: dict[str, Any]) -> int:
    return sum(stage.get("epochs", 1) for stage in (base.get("train") or {}).get("stages") or [{}])


@flow(name="mnist-sweep-search", validate_parameters=False)
def run_search(spec: SweepSpec, base: dict[str, Any], sweep_dir: Path, data_root: Path, files: DatasetFiles,
               workers: int) -> list[dict[str, Any]]:
    """Every trial of the study, run or resumed here, as leaderboard rows (completed, pruned, failed)."""
    from optuna.trial import TrialState
    from prefect.futures import as_completed

    logger = get_run_logger()
    search: Search = spec.search  # type: ignore[assignment]
    epochs = max_epochs(base)
    study = open_study(spec.name, search, spec.select, sweep_dir, epochs)
    resume = [t for t in study.trials if t.state == TrialState.RUNNING]
    if resume:
        logger.info("search %s: resuming %d interrupted trial(s), %d finished", spec.name, len(resume),
                    len(study.trials) - len(resume))
    in_flight: dict[Any, tuple[int, Trial]] = {}

    def start_next() -> bool:
        if resume:
            frozen = resume.pop(0)
            number, trial_id, overrides = frozen.number, frozen._trial_id, overrides_of(frozen, search)
        elif len(study.trials) < search.trials:
            asked = study.ask()
            number, trial_id, overrides = asked.number, asked._trial_id, suggest(asked, search)
        else:
            return False
        try:
            trial = make_trial(search_trial_id(number), overrides, base, f"search {spec.name}")
        except MnistflowError as exc:  # a combination the params refuse: a failed trial, told at once
            study.tell(number, state=TrialState.FAIL)
            logger.warning("trial %s: %s", search_trial_id(number), exc)
            return True
        reporter = Reporter(sweep_dir, spec.name, trial_id, spec.select, search, epochs)
        future = trial_task.submit(trial, sweep_dir / trial.id, data_root, files, reporter)
        in_flight[future] = (number, trial)
        return True

    while True:
        while len(in_flight) < workers and start_next():
            pass
        if not in_flight:
            break
        done = next(iter(as_completed(list(in_flight))))
        done.wait()  # its final state, not the one Dask saw first
        number, trial = in_flight.pop(done)
        record = outcome(done, trial, sweep_dir / trial.id)
        if record["status"] == "completed":
            study.tell(number, record[spec.select])
        else:
            study.tell(number, state=TrialState.PRUNED if record["status"] == "pruned" else TrialState.FAIL)
        logger.info("trial %s %s%s", trial.id, record["status"], f": {one_line(record.get('reason', ''))}"
                    if record.get("reason") else "")
    rows = rows_of(study, search, sweep_dir)
    report(study, rows, spec, sweep_dir)
    return rows


def report(study: Any, rows: list[dict[str, Any]], spec: SweepSpec, sweep_dir: Path) -> None:
    """importances.json, search.png and the search-report artifact."""
    import base64

    from prefect.artifacts import create_markdown_artifact

    weights = importances(study)
    atomic.write_json(sweep_dir / "importances.json", weights)
    image = plot_search(sweep_dir / "search.png", rows, spec.select, spec.name)
    best_effort("the search report", lambda: create_markdown_artifact(
        search_markdown(rows, weights, base64.b64encode(image.read_bytes()).decode()), key="search-report",
        description=f"Search {spec.name}"))


def rows_of(study: Any, search: Search, sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per trial of the study, from its run folder's record (a trial refused before it
    ran has none: the study's own note stands for it)."""
    rows = []
    for frozen in study.trials:
        trial_id = search_trial_id(frozen.number)
        record = read_record(sweep_dir / trial_id)
        rows.append(record or {"trial": trial_id, "overrides": overrides_of(frozen, search), "status": "failed",
                               "reason": "its params were refused (see the sweep's log)", "epochs": 0})
    return rows
