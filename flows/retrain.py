"""Scheduled retraining with champion/challenger promotion.

1. Download and verify the data (the base files and every increment intake
   added). If the data, the params and the code are the ones the champion was
   trained with, say so and stop (seconds, no training); likewise when only
   data was added and fewer than ``min_new_items`` items.
2. Otherwise train a challenger with the same tasks as the training flow; with
   ``warm_start`` it fine-tunes the champion for ``train.warm_stages`` (the
   deployment's data-added trigger asks for it; its weekly schedule trains the
   whole recipe from scratch).
3. Judge challenger and champion on the same test tensors (the current test
   set, each under its own input scaling); promote the challenger only if its
   test accuracy is at least the champion's plus ``promotion_margin``.
4. Version the run's data, checkpoint and metrics with DVC (dvc commit, push,
   git commit of dvc.lock), and leave a record in the registry's runs/.

Deployment `retrain` (prefect.yaml) runs it weekly and whenever intake emits
``mnistflow.data.added`` (its trigger); ``python -m flows.retrain`` runs it once.
Every run's report says how long ago data last arrived, and warns past
``stale_after_days``. Either commits dvc.lock to the current git branch and pushes to
the default DVC remote: ``--no-dvc-push`` keeps it local, ``--no-dvc-version``
does neither (the deployment's ``dvc_push`` and ``dvc_version``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.cli import run_from_command_line
from flows.pipeline import checked_device, resolve_params, run_folder_guard, run_pipeline
from flows.promotion import MIN_RECENT_ACCURACY, DvcVersioning, Promotion, judge_and_promote, new_record
from lifecycle import registry, versions
from lifecycle.retraction import learned_increments
from mnistflow.device import DeviceChoice
from mnistflow.dataset_files import DatasetFiles, dataset_dir
from mnistflow.errors import MnistflowError
from mnistflow.increments import Increment
from mnistflow.params import Params
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from lifecycle.registry_paths import RegistryPaths
from mnistflow.starting_point import WarmStart
from tasks.download import download_task
from tasks.record import record_task
from tasks.report import report_task


@flow(name="mnist-retraining", log_prints=True)
def retraining(params: Params | None = None, params_file: str = "params.yaml",
               promotion_margin: float = 0.0, dvc_version: bool = True, dvc_push: bool = True,
               run_dir: Path = DEFAULT_RUN_DIR, data_root: Path | None = None,
               registry_dir: Path | None = None, device: DeviceChoice | None = None,
               from_scratch: bool = False, min_new_items: int = 0, stale_after_days: float = 14.0,
               trigger: dict[str, Any] | None = None,
               min_recent_accuracy: float = MIN_RECENT_ACCURACY, warm_start: bool = False,
               promotion: Promotion = "champion") -> dict[str, Any]:
    """Retrain; promote the challenger only if it is at least as good as the champion.

    Args:
        params: the pipeline configuration (params.yaml's schema); overrides params_file.
        params_file: read when params is not given.
        promotion_margin: the challenger's test accuracy must reach the champion's plus this
            (0.0: at least as good; 0.002: better by 0.2 points; negative: tolerate a small loss).
        dvc_version: commit the run's data, checkpoint and metrics to DVC (and dvc.lock to git).
        dvc_push: also push them to the default DVC remote.
        run_dir: the challenger's run folder.
        data_root: where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/).
        registry_dir: champion and run records (default: $MNISTFLOW_REGISTRY or registry/).
        device: leave empty: the flow chooses params.device's device. (The command line
            passes the one it chose and checked before Prefect started.)
        from_scratch: train the challenger from the first epoch even when its run folder
            holds a finished run of these params.
        min_new_items: when only data was added since the champion, retrain only once at
            least this many items arrived (0: on any).
        stale_after_days: warn, in the log and the report, when no data arrived for this long.
        trigger: what started the run, when an event did (the deployment trigger passes the
            mnistflow.data.added event's increment, count and classes); kept in the record.
        min_recent_accuracy: hold a challenger for review, however good its test accuracy, when
            it agrees with fewer of the new items' held-out labels than this (flows/promotion.py).
        warm_start: fine-tune the champion for train.warm_stages instead of training
            train.stages from scratch (with no champion yet, from scratch). The deployment's
            trigger on added data sets it; params.yaml cannot, so `dvc repro` never needs a champion.
        promotion: "champion": a challenger that passes serves at once; "shadow": it answers
            live traffic beside the champion first, and the judge-shadow flow promotes it when
            it agrees with the champion and is as sure (docs/serving.md, "Shadow before promotion").
    """
    logger = get_run_logger()
    params = resolve_params(params, params_file)
    paths = RunPaths(Path(run_dir))
    where = roots(data_root=data_root, registry=registry_dir)
    registry_paths = RegistryPaths(where.registry)
    device = checked_device(params, paths, where.data_root, where.registry, device, writes_registry=True)  # before any write
    with run_folder_guard(paths, dataset_dir(params.data, where.data_root)) as dvc_root:
        files = download_task(params.data, where.data_root)
        champion = registry.read_champion(registry_paths)
        record = new_record(params, files, "retrain")
        record.update(trigger=trigger, staleness=staleness(files, stale_after_days))
        if record["staleness"]["stale"]:  # data stopped arriving; a project that never adds any is told, not warned
            (logger.warning if record["staleness"]["days"] is not None else logger.info)(
                "%s", record["staleness"]["message"])
        reason = skip_reason(champion, record, files, min_new_items)
        if reason is not None:
            logger.info(reason)
            record.update(promoted=False, trained=False, reason=reason, metrics=(champion or {}).get("metrics"))
            record_task(registry_paths, record)
            create_markdown_artifact(f"# Retraining skipped\n\n{reason[0].upper() + reason[1:]} (champion from run "
                                     f"`{champion['run_id']}`).\n\n{record['staleness']['message']}.",
                                     key="training-report")
            return {"trained": False, "promoted": False, "reason": reason}

        run_params, start, version = starting_point(params, warm_start, champion, registry_paths, files)
        record["warm_start"] = start and {"model_sha256": start.sha256, "version": version}
        result = run_pipeline(run_params, paths, where.data_root, device, files, from_scratch=from_scratch,
                              warm_start=start)
        decision = judge_and_promote(record, params, paths, registry_paths, result.data, promotion_margin,
                                     DvcVersioning(dvc_root, dvc_push) if dvc_version else None, result.evaluation,
                                     min_recent_accuracy=min_recent_accuracy, promotion=promotion)
        report_task(result.evaluation, paths.history, result.plots,
                    {"promoted": decision.promote, "reason": decision.reason,
                     "note": started_note(version) + record["staleness"]["message"]})
    return {"trained": True, "promoted": decision.promote, "shadow": bool(record.get("shadow")),
            "reason": decision.reason,
            "test_accuracy": decision.challenger_accuracy, "warm_start": record["warm_start"]}


def new_items(champion: dict[str, Any] | None, files: DatasetFiles) -> int:
    """Items in increments the champion was not trained on."""
    known = set((champion or {}).get("increments") or [])
    return sum(len(inc.item_sha256) for inc in files.increments if inc.id not in known)


def skip_reason(champion: dict[str, Any] | None, record: dict[str, Any], files: DatasetFiles,
                min_new_items: int) -> str | None:
    """Why this run need not train, or None."""
    if champion is None:
        return None
    theirs, ours = champion.get("fingerprint") or {}, record["fingerprint"]
    if theirs == ours:
        return "data, params and code unchanged since the champion was trained; nothing to do"
    only_data = all(theirs.get(k) == ours[k] for k in ours if k != "data")
    added = new_items(champion, files)
    if only_data and added < min_new_items:
        return (f"{added} new items since the champion, fewer than min_new_items {min_new_items}; "
                "waiting for more data")
    return None


def added_time(increment: Increment) -> datetime:
    """When an increment was added, from its manifest: an ISO 8601 time with its zone, or one line naming it."""
    try:
        when = datetime.fromisoformat(increment.time)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise MnistflowError(f"{Path(increment.directory) / 'manifest.json'}: time {str(increment.time)[:40]!r} is "
                             "not an ISO 8601 time with its time zone; restore the manifest (dvc checkout)")
    return when


def staleness(files: DatasetFiles, stale_after_days: float) -> dict[str, Any]:
    """How long since data last arrived (the newest increment), and whether that is too long."""
    times = [(added_time(inc), inc.time) for inc in files.increments if inc.time]
    if not times:
        return {"stale": True, "days": None,
                "message": "no data was ever added to the base dataset (python -m flows.intake)"}
    when, newest = max(times)
    days = (datetime.now(timezone.utc) - when).total_seconds() / 86400
    stale = days > stale_after_days
    return {"stale": stale, "days": round(days, 2),
            "message": (f"no new data for {days:.1f} days (more than {stale_after_days:g}); " if stale else "")
            + f"newest data added {newest}"}


def started_note(version: int | None) -> str:
    return f"warm-started from version {version}; " if version is not None else "trained from scratch; "


def starting_point(params: Params, warm_start: bool, champion: dict[str, Any] | None, registry_paths: RegistryPaths,
                   files: DatasetFiles) -> tuple[Params, WarmStart | None, int | None]:
    """The params to train, the model to start from and its version: with ``warm_start``, the
    champion (checked by read_champion), or from scratch when there is none yet. Never a
    model that learned from data since retracted (lifecycle.retraction): then the newest
    version that did not, or from scratch."""
    logger = get_run_logger()
    if not warm_start:
        logger.info("training from scratch (train.stages); a warm start fine-tunes the champion instead")
        return params, None, None
    if champion is None:
        logger.info("warm start asked, but there is no champion yet: training from scratch")
        return params, None, None
    present = {inc.id for inc in files.increments}
    records = versions.version_records(registry_paths)
    number = champion.get("version")
    gone = learned_increments(records, number) - present if number is not None else set()
    if not gone:
        logger.info("warm start from the champion, version %s", number)
        return params.warm_started(), WarmStart(registry_paths.champion_model, champion["model_sha256"]), number
    for earlier in sorted(records, reverse=True):
        if not learned_increments(records, earlier) - present:
            record = versions.read_version(registry_paths, earlier)  # its model checked against its record
            logger.info("the champion (version %s) learned from increments no longer in the data (%s): warm start "
                        "from version %s, the newest that did not", number, ", ".join(sorted(gone)), earlier)
            return params.warm_started(), WarmStart(versions.versions_dir(registry_paths) / str(earlier) / "model.pt",
                                                    record["model_sha256"]), earlier
    logger.info("every version learned from increments no longer in the data (%s): training from scratch",
                ", ".join(sorted(gone)))
    return params, None, None


def main() -> None:
    run_from_command_line(retraining, "python -m flows.retrain", __doc__,
                          lambda r, link: ("promoted: " if r["promoted"] else "shadow: " if r.get("shadow")
                                           else "not promoted: ") + r["reason"]
                          + f"\n  run in the UI: {link}",
                          with_registry=True)


if __name__ == "__main__":
    main()
