"""Staged training, one epoch at a time, checkpointed after each.

A training stage is ``{epochs, lr, schedule}``; each runs as its own call (its
own Prefect task run), picking up from the run's ``checkpoints/last.pt``.
Because the checkpoint is written atomically after every epoch and each epoch's
shuffling, dropout and augmentation are seeded from (seed, epoch), a run killed
at any moment and started again ends with exactly the metrics of an unbroken
run; no RNG state needs saving.

``history.csv``'s ``lr`` column is the rate applied at the epoch's last step
(under ``onecycle`` or ``cosine`` it moves every step).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from models import Network

from . import atomic
from .checkpoints import save_checkpoint, save_model
from .code import running_code_digest
from .device import DeviceChoice, Runtime, training_forward
from .errors import MnistflowError, NonFiniteLossError
from .params import ModelParams, Params, cnn_shape_problem
from .paths import RunPaths
from .scoring import evaluate_tensors
from .session import Session
from .dataset_files import DatasetFiles
from .starting_point import StageStart, WarmStart, check_init, load_state, start_stage
from .tensors import DeviceData, batches, epoch_seed, random_flip, random_shift, training_steps
from .weight_average import WeightAverage

log = logging.getLogger("mnistflow.train")

HISTORY_COLUMNS = ("epoch", "stage", "stage_epoch", "lr", "train_loss", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch tells whoever watches: the log, a progress bar, a benchmark."""

    epoch: int          # 1-based, over all stages
    total_epochs: int
    stage: int          # 1-based
    stages: int
    stage_epoch: int    # 1-based, within the stage
    stage_epochs: int
    lr: float           # applied at the epoch's last step
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float


EpochCallback = Callable[[EpochReport], None]


def warm_up_optimizers() -> None:
    """The first optimizer a process builds imports torch._dynamo (1.1-1.5 s here):
    a one-time library import, not training. Benchmarks pay it before their
    timers start; the flow's command line pays it in the background while the
    flow run is being set up on the server."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


@dataclass(frozen=True)
class StageSpan:
    index: int
    first_epoch: int  # global, 0-based
    end_epoch: int    # exclusive


def stage_spans(params: Params) -> list[StageSpan]:
    spans, start = [], 0
    for i, stage in enumerate(params.train.run_stages):
        spans.append(StageSpan(i, start, start + stage.epochs))
        start += stage.epochs
    return spans


def learning_rate(schedule: str, peak: float, step: int, total: int) -> float:
    if schedule == "constant":
        return peak
    progress = step / max(total - 1, 1)
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    # onecycle: 30% warm-up from peak/25, then cosine down to peak/1e4
    # (torch.optim.lr_scheduler.OneCycleLR's defaults, as a pure function of step).
    warm = 0.3
    if progress < warm:
        return peak / 25 + (peak - peak / 25) * progress / warm
    return peak / 1e4 + (peak - peak / 1e4) * 0.5 * (1 + math.cos(math.pi * (progress - warm) / (1 - warm)))


def build_optimizer(params: Params, model: Network) -> torch.optim.Optimizer:
    opt = params.train.optimizer
    first_lr = params.train.run_stages[0].lr
    if opt.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=first_lr, momentum=opt.momentum,
                               nesterov=opt.nesterov and opt.momentum > 0,
                               weight_decay=opt.weight_decay)
    cls = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=first_lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(repr(row[c]) for c in HISTORY_COLUMNS) for row in history]
    atomic.write_text(path, "\n".join(lines) + "\n")


def format_progress(report: EpochReport) -> str:
    """The one-line progress report of an epoch (terminal and Prefect logs alike)."""
    return (f"stage {report.stage}/{report.stages} epoch {report.stage_epoch}/{report.stage_epochs}  "
            f"lr {report.lr:.4g}  train loss {report.train_loss:.4f}  val loss {report.val_loss:.4f}  "
            f"val acc {100 * report.val_accuracy:.2f}%  ({report.seconds:.2f}s)")


def log_progress(report: EpochReport) -> None:
    log.info("%s", format_progress(report))


def quiet(report: EpochReport) -> None:
    """An epoch callback that says nothing (benchmarks, tests)."""


def train_epoch(model: Network, optimizer: torch.optim.Optimizer, data: DeviceData, params: Params,
                seed: int, lr_at: Callable[[int], float], forward: Callable | None = None,
                autocast: bool = False, average: WeightAverage | None = None) -> tuple[float, float]:
    """One pass over the training tensors; returns (mean loss, the last step's lr).

    ``forward`` is the model's call, or its compiled form (``train.compile``);
    ``autocast``, the runtime's bf16 choice (``Runtime.autocast_bf16``);
    ``average``, the moving average of the weights (``train.ema``), updated every step.
    """
    model.train()
    train, forward = data.train, forward or model
    torch.manual_seed(seed)  # dropout draws from the global generator
    augment_rng = torch.Generator(device=train.x.device).manual_seed(seed + 1)
    max_shift, flip, max_norm = params.train.augment.max_shift, params.train.augment.flip, params.model.max_norm
    smoothing = params.train.label_smoothing
    background = (0.0 - data.mean) / data.std
    loss_sum = torch.zeros((), device=train.x.device)
    for step, (x, y) in enumerate(batches(train, params.train.batch_size, shuffle_seed=seed)):
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if max_shift:
            x = random_shift(x, max_shift, augment_rng, data.shape, background)
        if flip:
            x = random_flip(x, augment_rng, data.shape)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(forward(x).float(), y, label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if max_norm is not None:
            model.apply_max_norm(max_norm)
        if average is not None:
            average.update(model)
        # Accumulate on the device: no host sync (.item()) inside the hot loop.
        loss_sum.add_(loss.detach(), alpha=len(y))
    return loss_sum.item() / len(train), lr


def architecture(model: ModelParams, shape: tuple[int, int]) -> dict[str, Any]:
    """The network the params describe, for images of ``shape``, as plain data
    (recorded in the model file; ``models.network`` builds it)."""
    if model.kind == "cnn":
        problem = cnn_shape_problem(shape, list(model.channels), list(model.kernels), model.padding,
                                    model.convs_per_block)
        if problem:
            raise MnistflowError(problem)
    common = {"kind": model.kind, "input_shape": list(shape), "hidden": list(model.hidden),
              "activation": model.activation, "dropout": model.dropout}
    if model.kind == "mlp":
        return common
    # test_flip only where it is on: files without it (all before it) rebuild, and warm-start, as they were.
    flip = {"test_flip": True} if model.test_flip else {}
    return {**common, "channels": list(model.channels), "kernels": list(model.kernels),
            "batch_norm": model.batch_norm, "padding": model.padding, "convs_per_block": model.convs_per_block,
            **flip}


def _epochs_left(start: StageStart, span: StageSpan, stage_index: int, last: bool, checkpoint: Path) -> range:
    """The epochs of this stage still to train, after a resume."""
    if start.done < span.first_epoch:
        raise MnistflowError(f"stage {stage_index + 1} cannot start: the checkpoint has {start.done} of the "
                             f"{span.first_epoch} epochs that come before it")
    if span.first_epoch < start.done < span.end_epoch:
        log.info("resuming stage %d at epoch %d of %d", stage_index + 1, start.done - span.first_epoch + 1,
                 span.end_epoch - span.first_epoch)
    epochs = range(max(start.done, span.first_epoch), span.end_epoch)
    if not epochs and last and start.state is not None:
        log.info("training was already complete (%d epochs in %s): nothing trained, the model is the one "
                 "that run made", start.done, checkpoint)
    return epochs


def _finite(train_loss: float, history: list[dict[str, Any]], where: str, lr: float) -> None:
    if not math.isfinite(train_loss):
        kept = (f"the checkpoint of epoch {history[-1]['epoch']}, the last good one, is kept" if history
                else "no epoch had finished, so nothing was written")
        raise NonFiniteLossError(f"{where}: training loss is {train_loss} (lr {lr} too high?); {kept}")


def train_stage(params: Params, data: DeviceData, runtime: Runtime, files: DatasetFiles,
                stage_index: int, paths: RunPaths, on_epoch: EpochCallback = log_progress,
                warm_start: WarmStart | None = None) -> Path:
    """Run (or finish) one training stage; returns the checkpoint path.

    After the last stage the trained network is also exported to ``model.pt``.
    ``warm_start``: the champion, for a warm-started run (Params.warm_started).
    """
    check_init(params, warm_start)
    warm_start = warm_start if params.train.init == "champion" else None
    spans = stage_spans(params)
    span, stage, last = spans[stage_index], params.train.run_stages[stage_index], stage_index == len(spans) - 1
    arch = architecture(params.model, data.shape)
    start = start_stage(params, arch, runtime.torch, files.digest, paths.last_checkpoint, warm_start)
    model, average, history = start.model, start.average, start.history
    epochs = _epochs_left(start, span, stage_index, last, paths.last_checkpoint)
    if epochs:  # a stage already done (a run resumed after it) needs no optimizer
        optimizer = build_optimizer(params, model)
        if start.state is not None:
            load_state(optimizer, start.state.get("optimizer"), paths.last_checkpoint)
        forward = training_forward(model, params.train.compile, runtime.torch)
    steps = training_steps(len(data.train), params.train.batch_size)
    for epoch in epochs:
        started, stage_epoch = time.perf_counter(), epoch - span.first_epoch
        first_step = stage_epoch * steps
        train_loss, lr = train_epoch(
            model, optimizer, data, params, epoch_seed(params.train.seed, epoch),
            lambda step: learning_rate(stage.schedule, stage.lr, first_step + step, stage.epochs * steps),
            forward, runtime.autocast_bf16, average)
        _finite(train_loss, history, f"stage {stage_index + 1} epoch {stage_epoch + 1}", stage.lr)
        val_loss, val_accuracy, _ = evaluate_tensors(start.evaluated, data.val)
        history.append({"epoch": epoch + 1, "stage": stage_index + 1, "stage_epoch": stage_epoch + 1, "lr": lr,
                        "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy})
        save_checkpoint(
            paths.last_checkpoint,
            model={k: v.detach().cpu() for k, v in model.state_dict().items()},
            optimizer=optimizer.state_dict(),
            completed_epochs=epoch + 1, stage=stage_index + 1, stage_epoch=stage_epoch + 1,
            history=history, params_digest=params.digest(), data_digest=files.digest, code_digest=running_code_digest(),
            **_started_from(warm_start), **({"ema": average.state()} if average is not None else {}),
        )
        _write_history(paths.history, history)
        on_epoch(EpochReport(epoch=epoch + 1, total_epochs=spans[-1].end_epoch, stage=stage_index + 1,
                             stages=len(spans), stage_epoch=stage_epoch + 1, stage_epochs=stage.epochs, lr=lr,
                             train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy,
                             seconds=time.perf_counter() - started))
    if last:
        _save_trained(params, start, arch, data, files, runtime, paths, spans[-1].end_epoch, warm_start)
    return paths.last_checkpoint


def _started_from(warm_start: WarmStart | None) -> dict[str, str]:
    return {"warm_start": warm_start.sha256} if warm_start else {}


def _save_trained(params: Params, start: StageStart, arch: dict[str, Any], data: DeviceData, files: DatasetFiles,
                  runtime: Runtime, paths: RunPaths, epochs: int, warm_start: WarmStart | None) -> None:
    """model.pt: the trained network (its average, when kept) and how to feed it."""
    if not start.history:  # resumed from a finished checkpoint with no history kept
        raise MnistflowError(f"{paths.last_checkpoint}: has no training history")
    _write_history(paths.history, start.history)
    save_model(
        paths.model, start.evaluated, architecture=arch,
        input_scaling={"scale": 1 / 255, "mean": data.mean, "std": data.std},
        dataset=files.dataset, data_digest=files.digest, params_digest=params.digest(),
        epochs=epochs, device=str(runtime.torch), device_reason=runtime.device.reason, **_started_from(warm_start),
    )


@dataclass
class TrainingTime:
    seconds: float = 0.0   # of the run that trained: this one, or the one before it
    trained: bool = False  # whether this run trained any epoch


@contextlib.contextmanager
def training_record(paths: RunPaths, device: DeviceChoice) -> Iterator[TrainingTime]:
    """Around all of a run's stages: how long they took goes in ``training.json``
    (for the run summary; not tracked by DVC), apart from the model and metrics so
    that their bytes stay the same from run to run. A run that found training finished (it wrote
    no checkpoint) keeps the record of the run that trained, and says so."""
    before, started, record = atomic.stamp(paths.last_checkpoint), time.perf_counter(), TrainingTime()
    yield record
    record.trained = atomic.stamp(paths.last_checkpoint) != before
    if record.trained or not paths.training.exists():
        record.seconds = round(time.perf_counter() - started, 3)
        atomic.write_json(paths.training, {"seconds": record.seconds, "device": device.name,
                                           "reason": device.reason})
    else:
        record.seconds = json.loads(paths.training.read_text())["seconds"]


def train_all(params: Params, session: Session, files: DatasetFiles, paths: RunPaths,
              on_epoch: EpochCallback = log_progress, warm_start: WarmStart | None = None) -> Path:
    """Every training stage in turn (the plain sequence the flow runs as tasks); each
    resumes from the run's checkpoint. Returns it."""
    check_init(params, warm_start)  # before any epoch, and before training.json is touched
    with training_record(paths, session.runtime.device):
        for index in range(len(params.train.run_stages)):
            checkpoint = train_stage(params, session.data, session.runtime, files, index, paths, on_epoch,
                                     warm_start)
    return checkpoint
