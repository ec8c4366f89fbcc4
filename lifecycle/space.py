"""The values a sweep tries: ranges, and setting a dotted key (``train.stages.0.lr``) in
the params; shared by the grid and random sweep (lifecycle.sweep_spec) and the search
(lifecycle.search_spec)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from mnistflow.errors import MnistflowError
from mnistflow.params import quote


# Trials a sweep may plan, checked before any is expanded: a sweep is run on one
# machine, and a thousand trials of the smallest network take a day on this CPU.
MAX_TRIALS = 1000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Range(Strict):
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

    @model_validator(mode="after")
    def _log_needs_positive(self) -> "Range":
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got low {self.low}); a log scale has no zero")
        return self


def _index(part: str) -> int:
    # Positions count from 0; a negative one ("train.stages.-1.lr") is not meant:
    # which stage it names would change with the base file's length.
    if not part.isdigit():
        raise ValueError(f"{part!r} is not a position in a list (0, 1, ...; no negative ones)")
    return int(part)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts and lists; a missing dict key is created."""
    *parents, last = key.split(".")
    node: Any = tree
    for part in parents:
        node = node[_index(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[_index(last)] = value
    else:
        node[last] = value


def overridden(base: dict[str, Any], overrides: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of ``base`` with every dotted key of ``overrides`` set; one line naming a key
    that is not one of the params."""
    raw = copy.deepcopy(base)
    for key, value in overrides.items():
        try:
            set_dotted(raw, key, value)
        except ValueError as exc:
            raise MnistflowError(f"{source}: {key}: {exc}") from None
        except (KeyError, IndexError, TypeError, AttributeError):
            raise MnistflowError(f"{source}: {key}: not a key of the params ({quote(value)})") from None
    return raw
