"""Scheduled retraining with champion/challenger promotion.

1. Download and verify the data. If the data, the params and the code are the
   ones the champion was trained with, say so and stop (seconds, no training).
2. Otherwise train a challenger with the same tasks as the training flow.
3. Judge challenger and champion on the same test set (the current one, each
   with its own input scaling); promote the challenger only if its test
   accuracy is at least the champion's plus ``promotion_margin``.
4. Version the run's data, checkpoint and metrics with DVC (dvc commit, push,
   git commit of dvc.lock), and leave a record in registry/runs/.

Deployment `retrain` (prefect.yaml) runs it weekly; ``python -m flows.retrain``
runs it once.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.pipeline import outputs_slot, resolve_params, run_from_command_line, run_pipeline
from mnistflow import registry
from mnistflow.device import select_device
from mnistflow.download import DatasetFiles
from mnistflow.params import Params, load_params
from mnistflow.paths import Outputs
from tasks import TASK_DEFAULTS
from tasks.download import download_task
from tasks.report import report_task


@task(name="judge", **TASK_DEFAULTS)
def judge_task(files: DatasetFiles, device_request: str, margin: float) -> registry.Decision:
    device = select_device(device_request).torch
    challenger = registry.test_accuracy(Outputs().model, files, device)["accuracy"]
    champion_path = registry.CHAMPION / "model.pt"
    champion = registry.test_accuracy(champion_path, files, device)["accuracy"] if champion_path.exists() else None
    return registry.decide(challenger, champion, margin)


@task(name="promote", **TASK_DEFAULTS)
def promote_task(record: dict[str, Any]) -> str:
    return str(registry.promote(Outputs().model, Outputs().metrics, record))


@task(name="version-with-dvc", retries=2, retry_delay_seconds=5, **TASK_DEFAULTS)
def version_task(params: Params, params_file: str, message: str, push: bool) -> dict[str, Any]:
    # dvc.lock records params.yaml: a run with other params would make it lie.
    try:
        on_disk = load_params(params_file)
    except Exception:
        on_disk = None
    if on_disk != params:
        return {"versioned": False, "why": f"run params differ from {params_file}; dvc.lock not updated"}
    return registry.version_with_dvc(message, push=push)


@task(name="record", **TASK_DEFAULTS)
def record_task(record: dict[str, Any]) -> str:
    return str(registry.write_run_record(record))


@flow(name="mnist-retraining", log_prints=True)
def retraining(params: Params | None = None, params_file: str = "params.yaml",
               promotion_margin: float = 0.0, dvc_version: bool = True,
               dvc_push: bool = True) -> dict[str, Any]:
    """Retrain; promote the challenger only if it is at least as good as the champion.

    Args:
        params: the pipeline configuration (params.yaml's schema); overrides params_file.
        params_file: read when params is not given.
        promotion_margin: the challenger's test accuracy must reach the champion's plus this
            (0.0: at least as good; 0.002: better by 0.2 points; negative: tolerate a small loss).
        dvc_version: commit the run's data, checkpoint and metrics to DVC (and dvc.lock to git).
        dvc_push: also push them to the default DVC remote.
    """
    logger = get_run_logger()
    params = resolve_params(params, params_file)
    with outputs_slot():
        files = download_task(params.data)
        champion = registry.read_champion()
        record: dict[str, Any] = {
            "run_id": str(flow_run.id or "local"), "flow_run_name": flow_run.name, "time": registry.now(),
            "data_digest": files.digest, "fingerprint": registry.fingerprint(files.digest, params),
            "params": params.model_dump(mode="json"),
        }
        if champion is not None and champion.get("fingerprint") == record["fingerprint"]:
            reason = "data, params and code unchanged since the champion was trained; nothing to do"
            logger.info(reason)
            record.update(promoted=False, trained=False, reason=reason, metrics=champion.get("metrics"))
            record_task(record)
            create_markdown_artifact(f"# Retraining skipped\n\n{reason.capitalize()} "
                                     f"(champion from run `{champion['run_id']}`).", key="training-report")
            return {"trained": False, "promoted": False, "reason": reason}

        result = run_pipeline(params, files)
        decision = judge_task(files, params.device, promotion_margin)
        logger.info("%s: %s", "promote" if decision.promote else "keep the champion", decision.reason)
        record.update(trained=True, promoted=decision.promote, reason=decision.reason,
                      challenger_test_accuracy=decision.challenger_accuracy,
                      champion_test_accuracy=decision.champion_accuracy,
                      metrics={"val": result.metrics["val"], "test": {
                          k: result.metrics["test"][k] for k in ("accuracy", "loss")}},
                      promotion_margin=promotion_margin)
        if dvc_version:
            record["dvc"] = version_task(params, params_file,
                                         f"retrain {record['run_id']}: test accuracy "
                                         f"{decision.challenger_accuracy:.4f}, "
                                         f"{'promoted' if decision.promote else 'not promoted'}", dvc_push)
        if decision.promote:
            record["champion_path"] = promote_task(record)
        record_task(record)
        report_task(result.metrics, Outputs().history, result.plots,
                    {"promoted": decision.promote, "reason": decision.reason})
    return {"trained": True, "promoted": decision.promote, "reason": decision.reason,
            "test_accuracy": decision.challenger_accuracy}


def main() -> None:
    run_from_command_line(retraining, "python -m flows.retrain", __doc__,
                          lambda r: ("promoted: " if r["promoted"] else "not promoted: ") + r["reason"])


if __name__ == "__main__":
    main()
