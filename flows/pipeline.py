"""The pipeline's task graph, shared by the training, retraining and sweep flows.

Call ``run_pipeline`` inside a flow: the flow calls each step's task itself,
one task run per step and one per training stage, in the order of the plain
sequence the DVC stages run (mnistflow/dvc_stages/): download -> split ->
runtime on the device chosen once -> tensors -> stages -> export, evaluate,
model card -> plots.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from prefect import get_run_logger
from prefect.concurrency.sync import concurrency

from lifecycle.workspace import check_dvc_params, dvc_lock, dvc_root_writing
from mnistflow.device import DeviceChoice, Runtime, configure_runtime
from mnistflow.dataset_files import DatasetFiles
from mnistflow.params import Params, load_params
from mnistflow.paths import RunPaths
from mnistflow.preflight import check_fits_data, check_run_folder, preflight
from mnistflow.run_lock import run_folder_lock
from mnistflow.train import EpochReport
from mnistflow.tensors import DeviceData
from mnistflow.starting_point import WarmStart, check_init
from mnistflow.train import training_record
from tasks.card import card_task
from tasks.device import device_task
from tasks.download import download_task
from tasks.evaluate import evaluate_task
from tasks.export import export_task
from tasks.plot import plot_task
from tasks.split import split_task
from tasks.tensors import tensors_task
from tasks.train import start_progress, train_stage_task

# Runs that write outputs/ take this slot one at a time; see docs/operations.md, "Overlapping runs".
OUTPUTS_LIMIT = "mnistflow-outputs"


@dataclass
class PipelineResult:
    files: DatasetFiles
    runtime: Runtime
    data: DeviceData
    evaluation: dict[str, Any]
    plots: list[Path]
    train_seconds: float  # of the run that trained (an earlier one when this one found it done)
    trained: bool


def ensure_outputs_limit() -> None:
    """Create the ``mnistflow-outputs`` limit (1 slot) where it does not exist yet:
    Prefect does not enforce a limit nobody created, and warns about it on every run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:  # read first: a create that finds the limit leaves a 40-line IntegrityError in the server's log
            client.read_global_concurrency_limit_by_name(OUTPUTS_LIMIT)
            return
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=OUTPUTS_LIMIT, limit=1))
        except ObjectAlreadyExists:  # another run made it between the read and the create
            pass


def resolve_params(params: Params | None, params_file: str | Path) -> Params:
    return params if params is not None else load_params(params_file)


def checked_device(params: Params, paths: RunPaths, data_root: Path, registry: Path,
                   chosen: DeviceChoice | None = None, writes_registry: bool = False) -> DeviceChoice:
    """The run's one device choice (``chosen`` when the command line made it), and every
    check that needs no write, for that device: a run folder that is no run's (the
    registry, the data root), ``device: cuda:7`` where there is none, a network that
    cannot fit, a folder that cannot be written, all refused before the run writes anything.
    A device ``chosen`` by the command line comes checked (flows.cli): checked once, not twice."""
    if chosen is not None:
        return device_task(params.device, chosen)
    check_run_folder(paths.dir, data_root, registry, argument="run_dir")
    device = device_task(params.device, chosen)
    preflight(params, [paths.dir, *([registry] if writes_registry else [])], device, data_root=data_root)
    return device


@contextlib.contextmanager
def run_folder_guard(paths: RunPaths, dataset_dir: Path) -> Iterator[Path | None]:
    """A run in the DVC workspace (a folder dvc.yaml writes) goes one at a time:
    it takes the ``mnistflow-outputs`` slot (across workers) and DVC's own locks
    on the run folder and the dataset (against `dvc repro`), and yields the
    repository's root. A run in any other folder runs alongside others and
    yields None."""
    root = dvc_root_writing(paths.dir)
    if root is None:
        with run_folder_lock(paths.dir):  # a second run in this folder is refused, not mixed in
            yield None
        return
    check_dvc_params(root)
    ensure_outputs_limit()
    # A short lease: if the worker dies holding the slot, the next run waits a minute, not five.
    with concurrency(OUTPUTS_LIMIT, occupy=1, strict=True, lease_duration=60), \
            dvc_lock(root, [paths.dir, dataset_dir]), run_folder_lock(paths.dir):
        yield root


def run_pipeline(params: Params, paths: RunPaths, data_root: Path, device: DeviceChoice,
                 files: DatasetFiles | None = None, progress_artifact: bool = True,
                 hand_off: bool = True, from_scratch: bool = False, label: str = "",
                 warm_start: WarmStart | None = None,
                 epoch_hook: Callable[[EpochReport], None] | None = None) -> PipelineResult:
    """The whole pipeline as task runs, on the ``device`` the flow chose. A sweep's
    trials pass ``progress_artifact=False`` (dozens of trials moving one progress bar
    would tell nobody anything) and ``hand_off=False``: no ONNX file or model card for
    every trial, only for the one promoted (``hand_off_tasks``). ``from_scratch``
    drops the run's checkpoint first, so a finished run trains again. ``label`` ends
    every task run's name (a sweep's trial id), so each log line says whose it is.
    ``warm_start``: the champion a warm-started run (Params.warm_started) fine-tunes.
    ``epoch_hook`` hears every epoch's report after its checkpoint is saved (a search's
    trial reports to its study there, and may stop: lifecycle.study)."""
    check_init(params, warm_start)  # before anything is written
    get_run_logger().info("params digest %s; run folder %s", params.digest()[:12], paths.dir)
    split, tensors, train_stage, evaluate, plot = (labelled(t, label) for t in (
        split_task, tensors_task, train_stage_task, evaluate_task, plot_task))
    files = files or download_task(params.data, data_root)
    check_fits_data(params, device, files.shape)  # a custom dataset's sizes are in its headers: before the split
    split(files, params.data, paths.split)
    runtime, data = runtime_and_tensors(params, files, paths, device, tensors)
    progress = start_progress(sum(s.epochs for s in params.train.run_stages)) if progress_artifact else None
    if from_scratch:
        paths.last_checkpoint.unlink(missing_ok=True)
    with training_record(paths, device) as took:
        for index in range(len(params.train.run_stages)):
            train_stage(params, data, runtime, files, index, paths, progress, warm_start, epoch_hook)
    evaluation = (hand_off_tasks(params, data, runtime, files, paths) if hand_off
               else evaluate(params, data, files, runtime, paths))
    plots = plot(paths, params.plot)
    return PipelineResult(files, runtime, data, evaluation, plots, took.seconds, took.trained)


def labelled(task: Any, label: str) -> Any:
    """``task`` whose runs are named ``<its usual name>-<label>``; itself without a label."""
    if not label:
        return task
    usual = task.task_run_name

    def name() -> str:
        from prefect.runtime import task_run

        base = usual() if callable(usual) else (usual or task.name).format(**task_run.parameters)
        return f"{base}-{label}"

    return task.with_options(task_run_name=name)


def runtime_and_tensors(params: Params, files: DatasetFiles, paths: RunPaths, device: DeviceChoice,
                        tensors: Any = tensors_task) -> tuple[Runtime, DeviceData]:
    """How the run computes on the device chosen, and the split's tensors on it."""
    runtime = configure_runtime(device, params.train.threads, params.train.precision)
    return runtime, tensors(files, paths.split, runtime.torch, params.data.normalize)


def hand_off_tasks(params: Params, data: DeviceData, runtime: Runtime, files: DatasetFiles,
                   paths: RunPaths) -> dict[str, Any]:
    """Export, evaluate (recording the export's check) and write the model card:
    every run's evaluation, and a sweep winner's before promotion (its trial skipped them)."""
    export_task(paths, files.paths["test-images"])
    evaluation = evaluate_task(params, data, files, runtime, paths)
    card_task(params, paths)
    return evaluation
