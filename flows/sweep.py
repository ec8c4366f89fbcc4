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
from pathlib import Path
from typing import Any, Callable

from prefect import flow, get_run_logger

from flows.cli import run_flow_command
from flows.dask_cluster import local_cluster, visible_gpus
from flows.pipeline import hand_off_tasks, runtime_and_tensors
from flows.promotion import judge_and_promote, new_record
from flows.search import run_search
from flows.trials import run_trials
from lifecycle import registry
from lifecycle.leaderboard import best
from lifecycle.search_spec import check_space
from lifecycle.sweep_spec import SweepSpec, Trial, apply_params, expand, load_spec, make_trial, swept_keys
from mnistflow.dataset_files import DatasetFiles, dataset_dir
from mnistflow.errors import MnistflowError
from mnistflow.params import DataParams
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import RunPaths, roots
from tasks.device import device_task
from tasks.download import download_task
from tasks.leaderboard import leaderboard_task


def _wants_gpu(trials: list[Trial]) -> bool:
    return any(t.params.device.startswith("cuda") for t in trials)


@flow(name="mnist-sweep", log_prints=True)
def sweep(spec: SweepSpec | None = None, sweep_file: str = "sweeps/example.yaml", runs_root: Path = Path("runs"),
          data_root: Path | None = None, dask_address: str | None = None, workers: int | None = None,
          apply_best: bool = False, params_out: Path = Path("params.yaml"), promote: bool = False,
          promotion_margin: float = 0.0, registry_dir: Path | None = None, planned: bool = False) -> dict[str, Any]:
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
        promotion_margin: with promote, the test accuracy over the champion's it must reach.
        registry_dir: champion and run records (default: $MNISTFLOW_REGISTRY or registry/).
        planned: the command line has planned and checked every trial already (a deployment's
            run plans and checks them here).
    """
    from prefect_dask import DaskTaskRunner

    logger = get_run_logger()
    spec = spec if spec is not None else load_spec(Path(sweep_file))
    where = roots(data_root=data_root, registry=registry_dir)
    trials = (trials_of(spec) if planned
              else plan(spec, [Path(runs_root), where.data_root], check_devices=not dask_address))
    files = datasets_of(trials, where.data_root)
    sweep_dir = Path(runs_root) / spec.name
    gpu = _wants_gpu(trials)
    in_flight = min(workers or spec.workers, spec.trial_count)
    if dask_address:
        runner = DaskTaskRunner(address=dask_address)
    else:
        threads = max(t.params.train.threads for t in trials)
        runner = DaskTaskRunner(**local_cluster(in_flight, threads, visible_gpus() if gpu else 0))
    logger.info("sweep %s: %d trials into %s", spec.name, spec.trial_count, sweep_dir)
    if spec.search is not None:  # trials[0] is the base: every trial reads its dataset
        base = trials[0].params.model_dump(mode="json")
        rows = run_search.with_options(task_runner=runner)(spec, base, sweep_dir, where.data_root,
                                                           files[trials[0].id], in_flight)
        trials = [make_trial(r["trial"], r["overrides"], base, f"search {spec.name}") for r in rows
                  if r["status"] == "completed"]
        files = {t.id: files[BASE] for t in trials}
        swept = sorted(spec.search.params)
    else:
        rows = run_trials.with_options(task_runner=runner)(trials, sweep_dir, where.data_root, files, gpu)
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
        result["promotion"] = promote_winner(winner, sweep_dir / winner.id, files[winner.id],
                                             RegistryPaths(where.registry), spec.name, promotion_margin)
    return result


def datasets_of(trials: list[Trial], data_root: Path,
                download: Callable[[DataParams, Path], DatasetFiles] = download_task) -> dict[str, DatasetFiles]:
    """Each trial's dataset, downloaded and verified once per folder, here: the trials
    only read it. Keyed by trial, since two custom datasets share the name "custom"
    but never a folder (mnistflow.dataset_files.dataset_dir)."""
    by_folder: dict[Path, DatasetFiles] = {}
    for trial in trials:
        folder = dataset_dir(trial.params.data, data_root)
        if folder not in by_folder:
            by_folder[folder] = download(trial.params.data, data_root)
    return {trial.id: by_folder[dataset_dir(trial.params.data, data_root)] for trial in trials}


BASE = "base"  # a search's one planned trial: its base params, checked as every trial is


def trials_of(spec: SweepSpec) -> list[Trial]:
    """Every trial of a grid or random sweep; for a search, its base, after its space is checked
    against the params schema (lifecycle.search_spec): the study draws the trials as it goes."""
    from mnistflow.params import load_params

    base = load_params(spec.base)  # the base must itself be valid
    raw = base.model_dump(mode="json")
    if spec.search is not None:
        check_space(spec.search, raw, f"sweep {spec.name}")
        return [Trial(BASE, {}, base)]
    return expand(spec, raw, f"sweep {spec.name}")


def plan(spec: SweepSpec, folders: list[Path], check_devices: bool = True) -> list[Trial]:
    """Every trial, validated; with ``check_devices``, each trial's device and memory on this machine."""
    from mnistflow.preflight import check_memory, writable

    trials = trials_of(spec)
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


def promote_winner(winner: Trial, run_dir: Path, files: DatasetFiles, registry_paths: RegistryPaths,
                   name: str, margin: float) -> dict[str, Any]:
    """The retraining flow's promotion path (flows.promotion), for the sweep's best trial."""
    registry.read_champion(registry_paths)  # a replaced or damaged champion stops here
    paths = RunPaths(run_dir)
    runtime, data = runtime_and_tensors(winner.params, files, paths, device_task(winner.params.device))
    decision = judge_and_promote(
        new_record(winner.params, files, f"sweep {name}, trial {winner.id}"), winner.params, paths,
        registry_paths, data, margin,
        # trials skip the export and the card: the champion has them
        before_promotion=lambda: hand_off_tasks(winner.params, data, runtime, files, paths))
    return {"promoted": decision.promote, "reason": decision.reason}


def summary(r: dict[str, Any], link: str) -> str:
    lines = [f"sweep {r['name']}: {r['trials'] - r['failed']} of {r['trials']} trials completed; "
             f"best {r['best']} {r['best_overrides']} with {r['select']} {r['best_value']:.4f} "
             f"({r['best_run_dir']}); leaderboard {r['leaderboard']}"]
    if r.get("applied_to"):
        lines.append(f"best params written to {r['applied_to']}: `dvc repro` reproduces the trial")
    if r.get("promotion"):
        lines.append(("promoted: " if r["promotion"]["promoted"] else "not promoted: ") + r["promotion"]["reason"])
    return "\n".join(lines + [f"sweep run in the UI: {link}"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_file", type=Path)
    parser.add_argument("--runs-root", type=Path, default=Path("runs"))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler, tcp://HOST:8786")
    parser.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    parser.add_argument("--apply-best", action="store_true", help="write the best trial's params to params.yaml")
    parser.add_argument("--params-out", type=Path, default=Path("params.yaml"))
    parser.add_argument("--promote", action="store_true", help="judge the best trial against the champion")
    parser.add_argument("--promotion-margin", type=float, default=0.0,
                        help="with --promote: the accuracy over the champion's it must reach (as retrain's)")
    parser.add_argument("--registry", type=Path, default=None)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_spec(args.sweep_file)
    # Every trial's params (and, on a local cluster, its device and memory) before anything starts.
    plan(spec, [args.runs_root, roots(data_root=args.data_root).data_root], check_devices=not args.dask_address)
    return {"spec": spec, "sweep_file": str(args.sweep_file), "runs_root": args.runs_root,
            "data_root": args.data_root, "dask_address": args.dask_address, "workers": args.workers,
            "apply_best": args.apply_best, "params_out": args.params_out, "promote": args.promote,
            "promotion_margin": args.promotion_margin, "registry_dir": args.registry, "planned": True}


def main() -> None:
    # Process-based workers need a server that outlives them (flows.server): each one
    # starting Prefect's temporary server would fight over one SQLite file.
    run_flow_command(sweep, "python -m flows.sweep", __doc__, summary, add_arguments, prepare)


if __name__ == "__main__":
    main()
