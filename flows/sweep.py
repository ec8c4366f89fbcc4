"""Hyperparameter sweeps, fanned out on a Dask cluster through prefect-dask.

    python -m flows.sweep sweeps/example.yaml                  # a local cluster of worker processes
    python -m flows.sweep sweeps/example.yaml --dask-address tcp://scheduler:8786
    python -m flows.sweep sweeps/example.yaml --apply-best     # then: dvc repro
    python -m flows.sweep sweeps/example.yaml --promote        # best trial vs the champion

Every trial's params are validated first; the dataset is downloaded and
verified once and read by every trial. Each trial runs the training flow's own
tasks in one Dask worker, in ``runs/<sweep>/<trial-id>/``; started again, the
sweep keeps completed trials and resumes interrupted ones from their
checkpoints. A failing trial is recorded with its reason and the others go on;
the sweep fails only if every trial fails. Results: ``leaderboard.csv``,
``sweep.png``, a table artifact and a report. Deployment: `mnist-sweep/sweep`.
"""

from __future__ import annotations

import argparse
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from flows.pipeline import hand_off_tasks, run_pipeline
from mnistflow import registry
from mnistflow.download import DatasetFiles
from mnistflow.errors import MnistflowError
from mnistflow.paths import RegistryPaths, RunPaths, roots
from mnistflow.sweep import (
    SweepSpec,
    Trial,
    apply_params,
    best,
    expand,
    load_spec,
    one_line,
    read_record,
    swept_keys,
    write_record,
)
from tasks import TASK_DEFAULTS, retry_unless_user_error
from tasks.download import download_task
from tasks.judge import judge_task
from tasks.leaderboard import leaderboard_task
from tasks.promote import promote_task
from tasks.record import record_task

# Dask's own INFO lines (every worker's start and stop) would drown the sweep's;
# set before distributed is first imported, and inherited by its worker processes.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

def local_cluster(workers: int, threads: int, gpus: int) -> dict[str, Any]:
    """DaskTaskRunner settings for a cluster on this machine.

    CPU: a LocalCluster of worker processes, processes x torch threads <= cores.
    GPU: one worker per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES) and
    offering the resource GPU=1 that each trial asks for.
    """
    import dask
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    # Dask's defaults are for many small tasks in big worker pools; a trial is one long,
    # allocation-heavy task. Its MALLOC_TRIM_THRESHOLD_ makes glibc hand every freed
    # batch back to the kernel (training 20% slower), and its 100 ms memory monitor
    # takes the GIL from the training loop several times a batch.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                     "distributed.worker.memory.monitor-interval": "2s"})
    preload = ["flows.dask_preload"]  # torch, matplotlib and Prefect, loaded as each worker starts
    if gpus:
        specs = {i: {"cls": Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}, "preload": preload,
                                                "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
                 for i in range(min(workers, gpus))}
        return {"cluster_class": SpecCluster, "cluster_kwargs": {
            "workers": specs, "scheduler": {"cls": Scheduler, "options": {"dashboard_address": None}}}}
    n = max(1, min(workers, (os.cpu_count() or 1) // threads))
    return {"cluster_class": LocalCluster, "cluster_kwargs": {
        "n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
        "preload": preload}}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _worker() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


# One trial: the training flow's own task graph (run_pipeline, not a copy), run
# inside one Dask worker. It takes and returns plain data and paths: its
# tensors, model and device never go through Dask's serializer. A completed
# trial is not trained again; a retry (a transient fault) or a rerun of an
# interrupted one resumes from its checkpoint, as every training stage does.
@task(name="trial", task_run_name="trial-{trial.id}", retries=1, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_user_error, **TASK_DEFAULTS)
def trial_task(trial: Trial, run_dir: Path, files: DatasetFiles) -> dict[str, Any]:
    done = read_record(run_dir)
    if done and done.get("status") == "completed" and RunPaths(run_dir).metrics.exists():
        return done
    record = {"trial": trial.id, "overrides": trial.overrides, "status": "running",
              "started_at": _now(), "worker": _worker(), "pid": os.getpid()}
    write_record(run_dir, record)
    result = run_pipeline(trial.params, RunPaths(run_dir), Path(files.directory).parent, files,
                          progress_artifact=False, hand_off=False)
    record.update(status="completed", reason="", finished_at=_now(),
                  val_accuracy=result.metrics["val"]["accuracy"], val_loss=result.metrics["val"]["loss"],
                  test_accuracy=result.metrics["test"]["accuracy"], train_seconds=round(result.train_seconds, 3))
    write_record(run_dir, record)
    return record


def _wants_gpu(trials: list[Trial]) -> bool:
    return any(t.params.device.startswith("cuda") for t in trials)


@flow(name="mnist-sweep-trials", validate_parameters=False)
def run_trials(trials: list[Trial], sweep_dir: Path, files: dict[str, Any], gpu: bool) -> list[dict[str, Any]]:
    """Submit every trial to the task runner (Dask); collect each one's record, failed or not."""
    import dask

    logger = get_run_logger()
    futures = {}
    for trial in trials:
        run_dir = sweep_dir / trial.id
        with dask.annotate(resources={"GPU": 1} if gpu else {}):
            futures[trial.id] = trial_task.submit(trial, run_dir, files[trial.params.data.dataset])
    rows = []
    for trial in trials:
        futures[trial.id].wait()
        state = futures[trial.id].state
        run_dir = sweep_dir / trial.id
        if state.is_completed():
            rows.append(state.result())
            continue
        try:
            state.result()
            reason = f"ended {state.name}"
        except BaseException as exc:  # noqa: BLE001 (any failure of a trial is recorded, not raised)
            reason = one_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, MnistflowError) else str(exc))
        record = {**(read_record(run_dir) or {}), "trial": trial.id, "overrides": trial.overrides,
                  "status": "failed", "reason": reason}
        write_record(run_dir, record)
        logger.warning("trial %s failed: %s", trial.id, reason)
        rows.append(record)
    return rows


@flow(name="mnist-sweep", log_prints=True)
def sweep(spec: SweepSpec | None = None, sweep_file: str = "sweeps/example.yaml", runs_root: Path = Path("runs"),
          data_root: Path | None = None, dask_address: str | None = None, workers: int | None = None,
          apply_best: bool = False, params_out: Path = Path("params.yaml"), promote: bool = False,
          registry_dir: Path | None = None) -> dict[str, Any]:
    """Train every trial of a sweep on Dask and rank them by a validation metric.

    Args:
        spec: the sweep (the sweep file's schema); overrides sweep_file.
        sweep_file: read when spec is not given.
        runs_root: trials go to runs_root/<sweep name>/<trial id>/.
        data_root: where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/).
        dask_address: an existing Dask scheduler (tcp://host:8786); default: a local cluster.
        workers: Dask worker processes for the local cluster (default: the sweep's `workers`).
        apply_best: write the best trial's params to params_out, so `dvc repro` reproduces it.
        params_out: where apply_best writes.
        promote: judge the best trial against the champion and promote it if it is better.
        registry_dir: champion and run records (default: $MNISTFLOW_REGISTRY or registry/).
    """
    from prefect_dask import DaskTaskRunner

    logger = get_run_logger()
    spec = spec if spec is not None else load_spec(Path(sweep_file))
    where = roots(data=data_root, registry=registry_dir)
    trials = plan(spec, [Path(runs_root), where.data], check_devices=not dask_address)
    # Downloaded and verified once, here; the trials only read it.
    files = {}
    for trial in trials:
        if trial.params.data.dataset not in files:
            files[trial.params.data.dataset] = download_task(trial.params.data, where.data)
    sweep_dir = Path(runs_root) / spec.name
    gpu = _wants_gpu(trials)
    if dask_address:
        runner = DaskTaskRunner(address=dask_address)
    else:
        threads = max(t.params.train.threads for t in trials)
        gpus = _visible_gpus() if gpu else 0
        runner = DaskTaskRunner(**local_cluster(min(workers or spec.workers, len(trials)), threads, gpus))
    logger.info("sweep %s: %d trials into %s", spec.name, len(trials), sweep_dir)
    rows = run_trials.with_options(task_runner=runner)(trials, sweep_dir, files, gpu)
    swept = swept_keys(trials)
    outputs = leaderboard_task(sweep_dir, spec.name, rows, swept, spec.select)
    top = best(rows, spec.select)
    if top is None:
        raise MnistflowError(f"sweep {spec.name}: every trial failed; first reason: {rows[0].get('reason')}")
    winner = next(t for t in trials if t.id == top["trial"])
    logger.info("best trial %s (%s): %s %.4f", winner.id, winner.overrides, spec.select, top[spec.select])
    result = {"name": spec.name, "trials": len(rows), "failed": sum(r["status"] != "completed" for r in rows),
              "best": winner.id, "best_overrides": winner.overrides, "select": spec.select,
              "best_value": top[spec.select], "best_run_dir": str(sweep_dir / winner.id), **outputs}
    if apply_best:
        result["applied_to"] = str(apply_params(winner.params, Path(params_out)))
    if promote:
        result["promotion"] = _promote(winner, sweep_dir / winner.id, files[winner.params.data.dataset],
                                       RegistryPaths(where.registry), spec.name)
    return result


def plan(spec: SweepSpec, folders: list[Path], check_devices: bool = True) -> list[Trial]:
    """Every trial, validated; with ``check_devices``, each trial's device and memory on this machine."""
    from mnistflow.params import load_params
    from mnistflow.preflight import check_memory, writable

    base = load_params(spec.base)  # the base must itself be valid
    trials = expand(spec, base.model_dump(mode="json"), f"sweep {spec.name}")
    for folder in folders:
        writable(folder)
    if check_devices:
        from mnistflow.device import select_device

        for trial in trials:
            try:
                check_memory(trial.params, select_device(trial.params.device))
            except MnistflowError as exc:
                raise MnistflowError(f"sweep {spec.name}: trial {trial.id}: {exc}") from None
    return trials


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _promote(winner: Trial, run_dir: Path, files, registry_paths: RegistryPaths, name: str) -> dict[str, Any]:
    """The retraining flow's judge and registry record, for the sweep's best trial."""
    from mnistflow.session import open_session

    registry.read_champion(registry_paths)  # a replaced or damaged champion stops here
    paths = RunPaths(run_dir)
    session = open_session(winner.params, files, paths)
    decision = judge_task(paths.model, registry_paths, session.data, 0.0)
    record = {"run_id": str(flow_run.id or "local"), "flow_run_name": flow_run.name, "time": registry.now(),
              "source": f"sweep {name}, trial {winner.id}", "data_digest": files.digest,
              "fingerprint": registry.fingerprint(files.digest, winner.params),
              "params": winner.params.model_dump(mode="json"), "trained": True, "promoted": decision.promote,
              "reason": decision.reason, "challenger_test_accuracy": decision.challenger_accuracy,
              "champion_test_accuracy": decision.champion_accuracy}
    if decision.promote:
        hand_off_tasks(winner.params, session, files, paths)  # trials skip them: the champion has them
        record["champion_path"] = promote_task(paths, registry_paths, record)
    record_task(registry_paths, record)
    return {"promoted": decision.promote, "reason": decision.reason}


def main() -> None:
    from mnistflow.cli import run_main

    parser = argparse.ArgumentParser(prog="python -m flows.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_file", type=Path)
    parser.add_argument("--runs-root", type=Path, default=Path("runs"))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler, tcp://HOST:8786")
    parser.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    parser.add_argument("--apply-best", action="store_true", help="write the best trial's params to params.yaml")
    parser.add_argument("--params-out", type=Path, default=Path("params.yaml"))
    parser.add_argument("--promote", action="store_true", help="judge the best trial against the champion")
    parser.add_argument("--registry", type=Path, default=None)
    args = parser.parse_args()

    def run() -> None:
        from prefect.settings import temporary_settings

        from flows.cli import flow_run_link, quiet_user_errors, show_own_logs
        from flows.server import api_settings

        spec = load_spec(args.sweep_file)
        # Every trial's params (and, on a local cluster, its device and memory) before anything starts.
        plan(spec, [args.runs_root, roots(data=args.data_root).data], check_devices=not args.dask_address)
        quiet_user_errors()
        show_own_logs()
        # Process-based workers need a server that outlives them: each one starting
        # Prefect's temporary server would fight over one SQLite file ("database is locked").
        with temporary_settings(api_settings()):
            state = sweep(spec=spec, sweep_file=str(args.sweep_file), runs_root=args.runs_root,
                          data_root=args.data_root, dask_address=args.dask_address, workers=args.workers,
                          apply_best=args.apply_best, params_out=args.params_out, promote=args.promote,
                          registry_dir=args.registry, return_state=True)
            link = flow_run_link(state)
        r = state.result()
        print(f"sweep {r['name']}: {r['trials'] - r['failed']} of {r['trials']} trials completed; "
              f"best {r['best']} {r['best_overrides']} with {r['select']} {r['best_value']:.4f} "
              f"({r['best_run_dir']}); leaderboard {r['leaderboard']}")
        if r.get("applied_to"):
            print(f"best params written to {r['applied_to']}: `dvc repro` reproduces the trial")
        if r.get("promotion"):
            print(("promoted: " if r["promotion"]["promoted"] else "not promoted: ") + r["promotion"]["reason"])
        print(f"sweep run in the UI: {link}")

    run_main(run)


if __name__ == "__main__":
    main()
