"""The drift check's two inputs, checked before anything is computed from them: a profile
(mnistflow/profile.py, from evaluation) and a window (the service's /monitoring/window).

Each is read within a byte bound (a window claiming two million images is 60 MB of
JSON: refused unread), then validated against a schema with pydantic: known keys
only, one count per class, the four summaries, finite numbers, bounded lengths. A
file or an answer that fails is one line naming it, the field and what is wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mnistflow.errors import MnistflowError
from mnistflow.profile import SUMMARIES

MAX_BYTES = 8 * 2**20        # a profile or a window: a few hundred KB
MAX_VALUES = 100_000         # per summary
MAX_CLASSES = 1_000
MAX_IMAGES = 10**9


class _Summaries(BaseModel):
    """The drift set, as the profile and the window both carry it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    size: int = Field(ge=0, le=MAX_IMAGES)
    classes: list[str] = Field(min_length=2, max_length=MAX_CLASSES)
    class_counts: list[int] = Field(max_length=MAX_CLASSES)
    samples: dict[str, list[float]]

    @field_validator("class_counts")
    @classmethod
    def _counts(cls, counts: list[int]) -> list[int]:
        if any(c < 0 for c in counts):
            raise ValueError("counts are 0 or more")
        return counts

    @field_validator("samples")
    @classmethod
    def _samples(cls, samples: dict[str, list[float]]) -> dict[str, list[float]]:
        if set(samples) != set(SUMMARIES):
            raise ValueError(f"must hold exactly {', '.join(SUMMARIES)}")
        for name, values in samples.items():
            if len(values) > MAX_VALUES:
                raise ValueError(f"{name}: {len(values):,} values; at most {MAX_VALUES:,}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name}: every value must be a finite number")
        return samples

    @model_validator(mode="after")
    def _agree(self) -> "_Summaries":
        if len(self.class_counts) != len(self.classes):
            raise ValueError(f"class_counts: {len(self.class_counts)} counts for {len(self.classes)} classes")
        if sum(self.class_counts) != self.size:
            raise ValueError(f"size {self.size} is not the sum of class_counts ({sum(self.class_counts)})")
        if any(len(v) > self.size for v in self.samples.values()):
            raise ValueError("samples: more values than images")
        return self


class Profile(_Summaries):
    pass


class Window(_Summaries):
    model_sha256: str | None = None


def _checked(kind: type[_Summaries], data: Any, where: str) -> dict[str, Any]:
    try:
        return kind.model_validate(data).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "the top level"
        raise MnistflowError(f"{where}: {field}: {error['msg']} (not a drift {kind.__name__.lower()})") from None


def parse(kind: type[_Summaries], raw: bytes, where: str) -> dict[str, Any]:
    """``raw`` bytes as a checked profile or window, or one line naming ``where``."""
    if len(raw) > MAX_BYTES:
        raise MnistflowError(f"{where}: over {MAX_BYTES:,} bytes; a drift {kind.__name__.lower()} is a few hundred KB")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise MnistflowError(f"{where}: not valid JSON") from None
    return _checked(kind, data, where)


def read_profile(path: Path) -> dict[str, Any]:
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise MnistflowError(f"{path}: {size:,} bytes; a drift profile is a few hundred KB")
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise MnistflowError(f"{path}: no validation profile (evaluation writes one beside metrics.json)") from None
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse(Profile, raw, str(path))


def comparable(profile: dict[str, Any], window: dict[str, Any], where: str) -> None:
    if window["classes"] != profile["classes"]:
        raise MnistflowError(f"{where}: classes {window['classes'][:10]} are not the profile's "
                             f"{profile['classes'][:10]}: another model's window")
