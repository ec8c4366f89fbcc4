"""Scheduled retraining with champion/challenger promotion.

1. Download and verify the data. If the data, the params and the code are the
   ones the champion was trained with, say so and stop (seconds, no training).
2. Otherwise train a challenger with the same tasks as the training flow.
3. Judge challenger and champion on the same test tensors (the current test
   set, each under its own input scaling); promote the challenger only if its
   test accuracy is at least the champion's plus ``promotion_margin``.
4. Version the run's data, checkpoint and metrics with DVC (dvc commit, push,
   git commit of dvc.lock), and leave a record in the registry's runs/.

Deployment `retrain` (prefect.yaml) runs it weekly; ``python -m flows.retrain``
runs it once. Either commits dvc.lock to the current git branch and pushes to
the default DVC remote: ``--no-dvc-push`` keeps it local, ``--no-dvc-version``
does neither (the deployment's ``dvc_push`` and ``dvc_version``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.cli import run_from_command_line
from flows.pipeline import checked_device, resolve_params, run_folder_guard, run_pipeline
from flows.promotion import DvcVersioning, judge_and_promote, new_record
from lifecycle import registry
from mnistflow.device import DeviceChoice
from mnistflow.download import dataset_dir
from mnistflow.params import Params
from mnistflow.paths import DEFAULT_RUN_DIR, RegistryPaths, RunPaths, roots
from tasks.download import download_task
from tasks.record import record_task
from tasks.report import report_task


@flow(name="mnist-retraining", log_prints=True)
def retraining(params: Params | None = None, params_file: str = "params.yaml",
               promotion_margin: float = 0.0, dvc_version: bool = True, dvc_push: bool = True,
               run_dir: Path = DEFAULT_RUN_DIR, data_root: Path | None = None,
               registry_dir: Path | None = None, device: DeviceChoice | None = None,
               from_scratch: bool = False) -> dict[str, Any]:
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
    """
    logger = get_run_logger()
    params = resolve_params(params, params_file)
    paths = RunPaths(Path(run_dir))
    where = roots(data=data_root, registry=registry_dir)
    registry_paths = RegistryPaths(where.registry)
    device = checked_device(params, [paths.dir, where.data, where.registry], device)  # before any write
    with run_folder_guard(paths, dataset_dir(params.data, where.data)) as dvc_root:
        files = download_task(params.data, where.data)
        champion = registry.read_champion(registry_paths)
        record = new_record(params, files, "retrain")
        if champion is not None and champion.get("fingerprint") == record["fingerprint"]:
            reason = "data, params and code unchanged since the champion was trained; nothing to do"
            logger.info(reason)
            record.update(promoted=False, trained=False, reason=reason, metrics=champion.get("metrics"))
            record_task(registry_paths, record)
            create_markdown_artifact(f"# Retraining skipped\n\n{reason.capitalize()} "
                                     f"(champion from run `{champion['run_id']}`).", key="training-report")
            return {"trained": False, "promoted": False, "reason": reason}

        result = run_pipeline(params, paths, where.data, device, files, from_scratch=from_scratch)
        decision = judge_and_promote(record, params, paths, registry_paths, result.data, promotion_margin,
                                     DvcVersioning(dvc_root, dvc_push) if dvc_version else None, result.metrics)
        report_task(result.metrics, paths.history, result.plots,
                    {"promoted": decision.promote, "reason": decision.reason})
    return {"trained": True, "promoted": decision.promote, "reason": decision.reason,
            "test_accuracy": decision.challenger_accuracy}


def main() -> None:
    run_from_command_line(retraining, "python -m flows.retrain", __doc__,
                          lambda r, link: ("promoted: " if r["promoted"] else "not promoted: ") + r["reason"]
                          + f"\n  run in the UI: {link}",
                          with_registry=True)


if __name__ == "__main__":
    main()
