"""A sweep file's ``search:`` section: a search that learns where to look, instead of
enumerating a grid.

    search:
      sampler: tpe                 # Optuna's TPE, seeded
      startup_trials: 10           # random trials before TPE models the space (Optuna's default)
      trials: 8                    # the budget: trials asked of the study, pruned ones included
      seed: 0
      pruner: {name: successive_halving}   # or hyperband, or none
      params:
        train.stages.0.lr: {low: 0.0001, high: 50.0, log: true}
        train.batch_size: {low: 64, high: 512, integer: true}
        model.hidden: {choices: [[32], [64]]}

The space keeps the sweep file's vocabulary (dotted keys, ``low``/``high``/``log``
ranges) and adds integers and choices. Every key is checked against the params
schema before any trial starts: both ends of a range (and every choice) are set
in the base params and validated, so a key that does not exist or a bound the
schema refuses is one line naming it. Nothing here imports Optuna.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from mnistflow.errors import MnistflowError
from mnistflow.params import quote, validate

from .space import MAX_TRIALS, Range, Strict, overridden



class IntegerRange(Range):
    integer: Literal[True]
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _whole(self) -> "IntegerRange":
        if self.low != int(self.low) or self.high != int(self.high):
            raise ValueError(f"integer: true needs whole low and high (got {self.low}, {self.high})")
        return self


class Choices(Strict):
    choices: list[Any] = Field(min_length=1, max_length=100)


class Pruner(Strict):
    name: Literal["successive_halving", "hyperband", "none"] = "none"
    min_resource: int = Field(1, ge=1)  # epochs a trial runs before it can be stopped
    reduction_factor: int = Field(3, ge=2)


class Search(Strict):
    sampler: Literal["tpe", "random"] = "tpe"
    startup_trials: int = Field(10, ge=1, le=MAX_TRIALS)  # random trials before TPE models the space
    trials: int = Field(ge=1, le=MAX_TRIALS)
    seed: int = Field(0, ge=0)
    pruner: Pruner = Pruner()
    params: dict[str, IntegerRange | Range | Choices] = Field(min_length=1)

    @field_validator("params", mode="before")
    @classmethod
    def _kinds(cls, params: Any) -> Any:
        """Each key's kind told by its fields, so a refusal names that kind's problem alone."""
        if not isinstance(params, dict):
            return params
        spaces = {}
        for key, value in params.items():
            kind = (Choices if isinstance(value, dict) and "choices" in value else
                    IntegerRange if isinstance(value, dict) and "integer" in value else
                    Range if isinstance(value, dict) and {"low", "high"} <= set(value) else None)
            if kind is None:
                raise ValueError(f"{key}: give {{low, high}} (with log: true or integer: true) or {{choices: [...]}}")
            try:
                spaces[key] = kind.model_validate(value)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                where = ".".join(map(str, error["loc"]))
                raise ValueError(f"{key}: {where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}")
        return spaces


def check_space(search: Search, base: dict[str, Any], source: str) -> None:
    """Every key of the space, at both ends of its range and at every choice, set in the base
    params and validated: one line naming the first key the params schema refuses."""
    for key, space in sorted(search.params.items()):
        if key.split(".")[0] == "data":
            raise MnistflowError(f"{source}: search.params.{key}: a search tries settings on one dataset; "
                                 "the data section is not searched")
        values = space.choices if isinstance(space, Choices) else (
            [int(space.low), int(space.high)] if isinstance(space, IntegerRange) else [space.low, space.high])
        for value in values:
            raw = overridden(base, {key: value}, f"{source}: search.params")
            try:
                validate(raw, f"{source}: search.params.{key} = {quote(value)}")
            except MnistflowError as exc:
                raise MnistflowError(str(exc).splitlines()[0]) from None
