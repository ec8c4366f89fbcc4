"""Step 5: staged training, one epoch at a time, checkpointed after each.

A stage is ``{epochs, lr, schedule}``; each runs as its own call (its own
Prefect task run), picking up from ``outputs/checkpoints/last.pt``. Because the
checkpoint is written atomically after every epoch and each epoch's shuffling,
dropout and augmentation are seeded from (seed, epoch), a run killed at any
moment and started again ends with exactly the metrics of an unbroken run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from models import MLP, build_model, load_checkpoint, save_checkpoint, save_model

from . import atomic
from .errors import MnistflowError, NonFiniteLossError
from .loaders import Splits, TensorSplit, batches, epoch_seed, random_shift
from .params import Params
from .paths import Outputs

log = logging.getLogger("mnistflow.train")

HISTORY_COLUMNS = ("epoch", "stage", "stage_epoch", "lr", "train_loss", "val_loss", "val_accuracy")
ProgressFn = Callable[[dict[str, Any]], None]


def configure_determinism(threads: int, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Pin what makes float results repeatable, and return it for the record.

    On a CPU every op this pipeline uses is deterministic once the thread count
    is fixed. On CUDA some kernels are not, so deterministic algorithms are
    switched on there only: the switch costs 1.5 s of imports on every start.
    """
    torch.set_num_threads(threads)
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        # cuBLAS reads this when its first handle is made, i.e. before training.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return {"threads": threads, "deterministic_algorithms": on_cuda}


@dataclass(frozen=True)
class StageSpan:
    index: int
    first_epoch: int  # global, 0-based
    end_epoch: int    # exclusive


def stage_spans(params: Params) -> list[StageSpan]:
    spans, start = [], 0
    for i, stage in enumerate(params.train.stages):
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


def build_optimizer(params: Params, model: MLP) -> torch.optim.Optimizer:
    opt = params.train.optimizer
    first_lr = params.train.stages[0].lr
    if opt.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=first_lr, momentum=opt.momentum,
                               nesterov=opt.nesterov and opt.momentum > 0,
                               weight_decay=opt.weight_decay)
    cls = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
    return cls(model.parameters(), lr=first_lr, weight_decay=opt.weight_decay)


@torch.no_grad()
def evaluate_split(model: MLP, split: TensorSplit, chunk: int = 10_000) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the predictions; one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    predictions = []
    for x, y in batches(split, chunk):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        predictions.append(logits.argmax(1))
    predicted = torch.cat(predictions)
    correct = (predicted == split.y).sum()
    loss, correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return loss / len(split), correct / len(split), predicted


def _resume_state(params: Params, data_digest: str, path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except MnistflowError as exc:
        raise MnistflowError(f"{exc}; delete it to train from scratch") from None
    if state.get("training_digest") != params.training_digest() or state.get("data_digest") != data_digest:
        log.info("%s was made with other params or data; not resuming from it", path)
        return None
    return state


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(repr(row[c]) for c in HISTORY_COLUMNS) for row in history]
    atomic.write_text(path, "\n".join(lines) + "\n")


def format_progress(row: dict[str, Any]) -> str:
    """The one-line progress report of an epoch (terminal and Prefect logs alike)."""
    return (f"stage {row['stage']}/{row['stages']} epoch {row['stage_epoch']}/{row['stage_epochs']}  "
            f"lr {row['lr']:.4g}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"val acc {100 * row['val_accuracy']:.2f}%  ({row['seconds']:.2f}s)")


def _log_progress(row: dict[str, Any]) -> None:
    log.info("%s", format_progress(row))


def train_stage(params: Params, splits: Splits, device: torch.device, data_digest: str,
                stage_index: int, outputs: Outputs = Outputs(),
                progress: ProgressFn = _log_progress, device_reason: str = "") -> Path:
    """Run (or finish) one stage; returns the checkpoint path.

    After the last stage the trained network is also exported to ``model.pt``.
    """
    spans = stage_spans(params)
    span = spans[stage_index]
    stage = params.train.stages[stage_index]
    train = params.train
    model = build_model(params.model.hidden, params.model.activation, params.model.dropout, train.seed).to(device)
    optimizer = build_optimizer(params, model)
    history: list[dict[str, Any]] = []
    done = 0
    state = _resume_state(params, data_digest, outputs.last_checkpoint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, done = list(state["history"]), int(state["completed_epochs"])
    if done < span.first_epoch:
        raise MnistflowError(
            f"stage {stage_index + 1} cannot start: the checkpoint has {done} of the "
            f"{span.first_epoch} epochs that come before it"
        )
    if done > span.first_epoch and done < span.end_epoch:
        log.info("resuming stage %d at epoch %d of %d", stage_index + 1,
                 done - span.first_epoch + 1, stage.epochs)

    steps = math.ceil(len(splits.train) / train.batch_size)
    for epoch in range(max(done, span.first_epoch), span.end_epoch):
        started = time.perf_counter()
        stage_epoch = epoch - span.first_epoch
        seed = epoch_seed(train.seed, epoch)
        torch.manual_seed(seed)  # dropout draws from the global generator
        augment_rng = torch.Generator(device=device).manual_seed(seed + 1)
        model.train()
        loss_sum = torch.zeros((), device=device)
        for step, (x, y) in enumerate(batches(splits.train, train.batch_size, shuffle_seed=seed)):
            if stage.schedule != "constant" or step == 0:
                lr = learning_rate(stage.schedule, stage.lr, stage_epoch * steps + step, stage.epochs * steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            if train.augment.max_shift:
                x = random_shift(x, train.augment.max_shift, augment_rng)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if params.model.max_norm is not None:
                model.apply_max_norm(params.model.max_norm)
            # Accumulate on the device: no host sync (.item()) inside the hot loop.
            loss_sum.add_(loss.detach(), alpha=len(y))
        train_loss = loss_sum.item() / len(splits.train)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"stage {stage_index + 1} epoch {stage_epoch + 1}: training loss is {train_loss} "
                f"(lr {stage.lr} too high?); outputs of the last good epoch are kept"
            )
        val_loss, val_accuracy, _ = evaluate_split(model, splits.val)
        row = {"epoch": epoch + 1, "stage": stage_index + 1, "stage_epoch": stage_epoch + 1,
               "lr": stage.lr, "train_loss": train_loss, "val_loss": val_loss,
               "val_accuracy": val_accuracy}
        history.append(row)
        save_checkpoint(
            outputs.last_checkpoint,
            model={k: v.detach().cpu() for k, v in model.state_dict().items()},
            optimizer=optimizer.state_dict(),
            rng={"torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            completed_epochs=epoch + 1, stage=stage_index + 1, stage_epoch=stage_epoch + 1,
            history=history, training_digest=params.training_digest(), data_digest=data_digest,
        )
        _write_history(outputs.history, history)
        progress({**row, "stages": len(spans), "stage_epochs": stage.epochs,
                  "total_epochs": spans[-1].end_epoch, "seconds": time.perf_counter() - started})

    if stage_index == len(spans) - 1:
        if not history:  # resumed from a finished checkpoint with no history kept
            raise MnistflowError(f"{outputs.last_checkpoint}: has no training history")
        _write_history(outputs.history, history)
        save_model(
            outputs.model, model,
            architecture={"hidden": list(params.model.hidden), "activation": params.model.activation,
                          "dropout": params.model.dropout},
            input_scaling={"scale": 1 / 255, "mean": splits.mean, "std": splits.std},
            dataset=params.data.dataset, data_digest=data_digest,
            training_digest=params.training_digest(), epochs=spans[-1].end_epoch,
            device=str(device), device_reason=device_reason,
        )
    return outputs.last_checkpoint
