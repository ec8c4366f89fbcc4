"""Where a training stage begins: a fresh network, the champion's weights, or the
run's last checkpoint, and the weight average beside it.

A checkpoint is resumed only when it was made by these params, this data, this
starting model and this training code: a resume must end exactly as an
unbroken run of this code would. Anything else starts afresh, and says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models import Network, build_model

from . import atomic
from .checkpoints import load_checkpoint, load_model
from .code import running_code_digest
from .errors import MnistflowError
from .params import Params
from .weight_average import WeightAverage

log = logging.getLogger("mnistflow.train")


@dataclass(frozen=True)
class WarmStart:
    """The model a warm-started run (Params.warm_started) fine-tunes: the champion's file and
    the sha256 it was promoted with (recorded in the checkpoint and model.pt, so a
    resume and a re-run start from exactly the same weights)."""

    path: Path
    sha256: str


def _warm_weights(warm_start: WarmStart, arch: dict[str, Any]) -> dict[str, torch.Tensor]:
    if atomic.sha256_of(warm_start.path) != warm_start.sha256:
        raise MnistflowError(f"warm start: {warm_start.path} is no longer the champion "
                             f"{warm_start.sha256[:12]} this run started from; run it again")
    champion, info = load_model(warm_start.path)
    if info["architecture"] != arch:
        raise MnistflowError(
            f"warm start: the champion {warm_start.path} is {info['architecture']}, these params build "
            f"{arch}; retrain without --warm-start (warm_start: false), or give the champion's model section")
    return champion.state_dict()


def load_state(target: torch.nn.Module | torch.optim.Optimizer, state: Any, path: Path) -> None:
    """Load a checkpoint's state; weights that do not fit the network are the file's error, in one line."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MnistflowError(f"{path}: its weights do not fit the network these params build ({first_line}); "
                             "delete it to train from scratch") from None


def check_init(params: Params, warm_start: WarmStart | None) -> None:
    if params.train.init == "champion" and warm_start is None:
        raise MnistflowError(
            "warm start: params that fine-tune the champion need the champion, which only the retrain flow "
            "hands to training (python -m flows.retrain --warm-start)")


def _resume_state(params: Params, data_digest: str, path: Path,
                  warm_start: WarmStart | None = None) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except MnistflowError as exc:
        raise MnistflowError(f"{exc}; delete it to train from scratch") from None
    if state.get("params_digest") != params.digest() or state.get("data_digest") != data_digest:
        log.info("%s was made with other params or data; not resuming from it", path)
        return None
    if state.get("warm_start") != (warm_start.sha256 if warm_start else None):
        log.info("%s started from another model; not resuming from it", path)
        return None
    # A resume must end as an unbroken run of *this* code would: a checkpoint the
    # training code has changed under since is a start from scratch.
    if state.get("code_digest") != running_code_digest():
        log.info("%s was made by other training code; not resuming from it", path)
        return None
    return state


@dataclass
class StageStart:
    """A stage's network as it begins, its average, and what the checkpoint resumed from holds."""

    model: Network
    average: WeightAverage | None
    state: dict[str, Any] | None = None  # the checkpoint resumed from; None: a fresh start
    history: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0  # epochs completed, over all stages

    @property
    def evaluated(self) -> Network:
        """What validates, and what model.pt holds: the average when there is one."""
        return self.average.model if self.average is not None else self.model


def start_stage(params: Params, arch: dict[str, Any], device: torch.device, data_digest: str, checkpoint: Path,
                warm_start: WarmStart | None) -> StageStart:
    """The network built from the seed, then resumed from ``checkpoint`` or warm-started."""
    start = StageStart(build_model(arch, params.train.seed).to(device), None)
    start.state = _resume_state(params, data_digest, checkpoint, warm_start)
    if start.state is not None:
        load_state(start.model, start.state.get("model"), checkpoint)
        start.history, start.done = list(start.state["history"]), int(start.state["completed_epochs"])
    elif warm_start is not None:
        start.model.load_state_dict(_warm_weights(warm_start, arch))
    if params.train.ema:
        start.average = WeightAverage(start.model, params.train.ema)
        if start.state is not None:
            load_state(start.average.model, start.state.get("ema", {}).get("weights"), checkpoint)
            start.average.updates = int(start.state["ema"]["updates"])
    return start
