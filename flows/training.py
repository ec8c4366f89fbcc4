"""The training flow: download -> split -> device -> tensors -> stages -> export, evaluate, card -> plot.

Run it directly from the repository root::

    python -m flows.training                          # on params.yaml, into outputs/
    python -m flows.training --params presets/fast.yaml --run-dir runs/fast

or through the `train` deployment (prefect.yaml; entrypoint
``flows/training.py:training``). Its typed ``params`` argument is the
params.yaml schema, shown as a form in the Prefect UI; left empty, params.yaml
is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.cli import run_from_command_line
from flows.pipeline import checked_device, resolve_params, run_folder_guard, run_pipeline
from mnistflow.device import DeviceChoice
from mnistflow.dataset_files import dataset_dir
from mnistflow.params import Params
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from tasks.report import report_task
from lifecycle.versioning import outside_workspace
from tasks.version import version_task


@flow(name="mnist-training", log_prints=True)
def training(params: Params | None = None, params_file: str = "params.yaml",
             run_dir: Path = DEFAULT_RUN_DIR, data_root: Path | None = None,
             device: DeviceChoice | None = None, from_scratch: bool = False) -> dict[str, Any]:
    """Train and evaluate a network (an MLP or a CNN: params.model.kind) on MNIST-family data.

    Args:
        params: the whole pipeline configuration (params.yaml's schema); overrides params_file.
        params_file: read when params is not given.
        run_dir: the run's folder: split, checkpoints, model, metrics, plots.
        data_root: where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/).
        device: leave empty: the flow chooses params.device's device. (The command line
            passes the one it chose and checked before Prefect started.)
        from_scratch: train again from the first epoch, even when the run folder holds
            a finished run of these params (which is otherwise kept: nothing to train).
    """
    params = resolve_params(params, params_file)
    paths = RunPaths(Path(run_dir))
    where = roots(data_root=data_root)
    device = checked_device(params, paths, where.data_root, where.registry, device)  # folders, device, memory: first
    with run_folder_guard(paths, dataset_dir(params.data, where.data_root)) as dvc_root:
        result = run_pipeline(params, paths, where.data_root, device, from_scratch=from_scratch)
        # Record in dvc.lock and the DVC cache what this run wrote to the workspace, so
        # `dvc status`, `dvc metrics show` and `dvc plots show` describe it. Nothing is
        # pushed or committed to git: that is retraining's job (flows/retrain.py).
        # Outside the workspace there is nothing to record: no task run for it.
        recorded = (version_task(dvc_root, paths, params, "", push=False, git_commit=False) if dvc_root
                    else outside_workspace(paths))
        if dvc_root and not recorded["versioned"]:  # a preset's run in the workspace: dvc status is dirty now
            get_run_logger().warning("%s; `dvc status` shows the workspace changed until a run of params.yaml's "
                                     "params (or `dvc checkout`)", recorded["why"])
        report_task(result.evaluation, paths.history, result.plots, versioning=recorded)
    return {
        "val_accuracy": result.evaluation["val"]["accuracy"],
        "test_accuracy": result.evaluation["test"]["accuracy"],
        "device": result.runtime.device.name,
        "plots": [str(p) for p in result.plots],
        "metrics": str(paths.metrics),
        "model": str(paths.model),
        "run_dir": str(paths.dir),
        "train_seconds": result.train_seconds,
        "trained": result.trained,
        "dvc": recorded,
    }


def summary(result: dict[str, Any], link: str) -> str:
    """The block a user reads when the run ends: how it did, and where everything is."""
    dvc = result["dvc"]
    trained = (f"{result['train_seconds']:.1f}s of training on {result['device']}" if result["trained"] else
               f"training was already complete: {result['train_seconds']:.1f}s when it trained; "
               "--from-scratch trains again")
    recorded = ("recorded in dvc.lock and the DVC cache: `dvc status`, `dvc metrics show`, `dvc plots show`"
                if dvc.get("versioned") else dvc.get("why", "not recorded"))
    return "\n".join([
        f"validation accuracy {100 * result['val_accuracy']:.2f}%, test accuracy "
        f"{100 * result['test_accuracy']:.2f}% ({trained})",
        f"  run folder   {result['run_dir']}  (model {result['model']}, metrics {result['metrics']})",
        f"  plots        {', '.join(result['plots'])}",
        f"  run in UI    {link}",
        f"  DVC          {recorded}",
    ])


def main() -> None:
    run_from_command_line(training, "python -m flows.training", __doc__, summary)


if __name__ == "__main__":
    main()
