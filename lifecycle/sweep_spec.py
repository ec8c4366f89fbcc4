"""Hyperparameter sweeps: the sweep file, its trials, and the leaderboard.

A sweep file (``sweeps/example.yaml``) names a base params file and the values
to try, by dotted key (``train.stages.1.lr``, ``model.hidden``):

    name: lr-and-width
    base: params.yaml
    grid: {train.stages.0.lr: [0.2, 0.5], model.hidden: [[32], [64]]}   # crossed
    random: {trials: 4, seed: 0, params: {train.stages.1.lr: {low: 0.01, high: 0.2, log: true}}}
    seeds: 1            # repeats of each trial, with train.seed 0, 1, ...
    select: val_accuracy
    workers: 2

Every trial's params are validated before anything runs; a trial's id is a
digest of its overrides, so the same sweep started again finds its folders.
Nothing here imports Prefect or Dask.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from mnistflow.params import Params, _describe, validate

# A validation metric and whether larger is better. Test metrics never pick a winner.
SELECTABLE = {"val_accuracy": True, "val_loss": False}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    low: float
    high: float
    log: bool = False

    @field_validator("high")
    @classmethod
    def _ordered(cls, high: float, info) -> float:
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"must be greater than low ({low})")
        return high


class RandomSearch(_Strict):
    trials: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    params: dict[str, Range] = Field(min_length=1)


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    base: str = "params.yaml"
    grid: dict[str, list[Any]] = {}
    random: RandomSearch | None = None
    seeds: int = Field(1, ge=1)
    select: str = "val_accuracy"
    workers: int = Field(2, ge=1)

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key}: lists no values")
        return grid

    @field_validator("select")
    @classmethod
    def _validation_metric(cls, select: str) -> str:
        if select not in SELECTABLE:
            raise ValueError(f"must be a validation metric: {' or '.join(SELECTABLE)} (never test)")
        return select


@dataclass(frozen=True)
class Trial:
    id: str
    overrides: dict[str, Any]  # dotted key -> value, including train.seed for repeats
    params: Params


def load_spec(path: Path) -> SweepSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistflowError(f"{path}: no such sweep file") from None
    except yaml.YAMLError:
        raise MnistflowError(f"{path}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise MnistflowError(f"{path}: expected a mapping (name, base, grid, ...)")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise MnistflowError(f"{path}: " + "; ".join(_describe(e) for e in exc.errors(include_url=False))) from None
    if not spec.grid and spec.random is None:
        raise MnistflowError(f"{path}: grid: is empty and there is no random search; nothing to try")
    return spec


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts and lists; a missing dict key is created."""
    *parents, last = key.split(".")
    node: Any = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def trial_id(overrides: dict[str, Any]) -> str:
    blob = json.dumps(overrides, sort_keys=True, separators=(",", ":")).encode()
    return "t-" + hashlib.sha256(blob).hexdigest()[:10]


def _samples(search: RandomSearch) -> list[dict[str, Any]]:
    rng = random.Random(search.seed)
    samples = []
    for _ in range(search.trials):
        sample = {}
        for key, r in sorted(search.params.items()):
            if r.log:
                sample[key] = float(f"{math.exp(rng.uniform(math.log(r.low), math.log(r.high))):.6g}")
            else:
                sample[key] = float(f"{rng.uniform(r.low, r.high):.6g}")
        samples.append(sample)
    return samples


def expand(spec: SweepSpec, base: dict[str, Any], source: str) -> list[Trial]:
    """Every trial: the grid crossed with the random samples, times the seeds; all validated."""
    keys = sorted(spec.grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(spec.grid[k] for k in keys))]
    samples = _samples(spec.random) if spec.random else [{}]
    base_seed = (base.get("train") or {}).get("seed", 0)
    trials, problems = [], []
    for point, sample, repeat in itertools.product(points, samples, range(spec.seeds)):
        overrides = {**point, **sample}
        if spec.seeds > 1:
            overrides["train.seed"] = base_seed + repeat
        raw = copy.deepcopy(base)
        try:
            for key, value in overrides.items():
                set_dotted(raw, key, value)
        except (KeyError, IndexError, ValueError, TypeError):
            raise MnistflowError(f"{source}: {key}: not a key of the params ({value!r})") from None
        tid = trial_id(overrides)
        try:
            trials.append(Trial(tid, overrides, validate(raw, f"trial {tid}")))
        except MnistflowError as exc:
            problems.append(str(exc))
    if problems:
        raise MnistflowError(f"{source}: {len(problems)} trial(s) have bad params: " + "; ".join(problems))
    return trials


def swept_keys(trials: list[Trial]) -> list[str]:
    return sorted({key for trial in trials for key in trial.overrides})


def apply_params(params: Params, path: Path) -> Path:
    """Write ``params`` as a complete params file (every key: DVC requires them)."""
    text = ("# Written by `python -m flows.sweep --apply-best`: the sweep's best trial.\n"
            + yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    atomic.write_text(path, text)
    return path


def one_line(reason: str) -> str:
    return re.sub(r"\s+", " ", reason).strip()
