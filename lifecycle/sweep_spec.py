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
from pydantic import Field, ValidationError, field_validator

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from mnistflow.params import Params, describe_all, validate

from .search_spec import Search
from .space import MAX_TRIALS, Range, Strict, overridden
from mnistflow.yaml_file import read_yaml

# A validation metric and whether larger is better. Test metrics never pick a winner.
SELECTABLE = {"val_accuracy": True, "val_loss": False}


class RandomSearch(Strict):
    trials: int = Field(ge=1, le=MAX_TRIALS)
    seed: int = Field(0, ge=0)
    params: dict[str, Range] = Field(min_length=1)


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    base: str = "params.yaml"
    grid: dict[str, list[Any]] = {}
    random: RandomSearch | None = None
    search: Search | None = None  # lifecycle.search_spec: a study instead of a grid
    seeds: int = Field(1, ge=1, le=MAX_TRIALS)
    select: str = "val_accuracy"
    workers: int = Field(2, ge=1, le=256)

    @property
    def trial_count(self) -> int:
        """How many trials the sweep plans, counted without expanding them."""
        if self.search is not None:
            return self.search.trials
        points = math.prod(len(values) for values in self.grid.values())
        return points * (self.random.trials if self.random else 1) * self.seeds

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
    raw = read_yaml(path, "sweep file")  # bounded: size, nesting, aliases
    if not isinstance(raw, dict):
        raise MnistflowError(f"{path}: expected a mapping (name, base, grid, ...)")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise MnistflowError(f"{path}: {describe_all(exc.errors(include_url=False))}") from None
    if spec.search is not None and (spec.grid or spec.random is not None or spec.seeds != 1):
        raise MnistflowError(f"{path}: search: replaces grid:, random: and seeds:; give the one or the others")
    if spec.search is None and not spec.grid and spec.random is None:
        raise MnistflowError(f"{path}: grid: is empty and there is no random search; nothing to try")
    if spec.trial_count > MAX_TRIALS:
        raise MnistflowError(f"{path}: plans {spec.trial_count:,} trials (grid x random.trials x seeds); "
                             f"a sweep runs at most {MAX_TRIALS:,}")
    return spec


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
        try:
            trials.append(make_trial(trial_id(overrides), overrides, base, source))
        except InvalidTrial as exc:
            problems.append(str(exc))
    if problems:
        raise MnistflowError(f"{source}: {len(problems)} trial(s) have bad params: " + "; ".join(problems))
    return trials


class InvalidTrial(MnistflowError):
    """A trial whose params the schema refuses (its keys exist)."""


def make_trial(tid: str, overrides: dict[str, Any], base: dict[str, Any], source: str) -> Trial:
    """The base params with ``overrides`` set, validated: a key that is not one of the params
    stops the sweep (MnistflowError); a value the schema refuses is an ``InvalidTrial``."""
    raw = overridden(base, overrides, source)
    try:
        return Trial(tid, overrides, validate(raw, f"trial {tid}"))
    except MnistflowError as exc:
        raise InvalidTrial(str(exc)) from None


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
