"""The shadow: a challenger that passed the test set, answering beside the champion on
live traffic before it serves.

``<registry>/shadow`` is a link to an installed folder, like the champion
(lifecycle.install): the model, its evaluation and its record change as one. The
service answers every request with the champion, and hands a fraction of them
to the shadow off the request path (serving.shadow); the ``judge-shadow`` flow
then reads how often the two agreed and how sure the shadow was, and either
promotes the shadow (it becomes the next version and the champion, its record
holding both judgements: the test set's and the live one) or discards it. A
shadow is never deleted by a discard: the folder goes at a later install, and
the run that made it keeps its files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from mnistflow.paths import RunPaths

from . import registry
from .install import install_files, remove_link, serving_folder
from .registry_paths import CHAMPION_FILES, REQUIRED, RegistryPaths

LINK = "shadow"


@dataclass(frozen=True)
class Thresholds:
    """What live traffic must show before a shadow serves (docs/serving.md, "Shadow before promotion")."""

    min_images: int = 200          # shadowed images before any judgement
    min_agreement: float = 0.95    # share of images where shadow and champion give the same class
    max_confidence_drop: float = 0.05  # the shadow's mean top-1 probability, at most this under the champion's


MAX_BYTES = 2**20  # the service's shadow statistics: a few KB


class LiveStats(BaseModel):
    """``GET /monitoring/shadow``'s answer (serving.shadow), checked before it is judged."""

    model_config = ConfigDict(extra="ignore")

    shadow_sha256: str | None = Field(pattern="^[0-9a-f]{64}$")
    champion_sha256: str | None = Field(pattern="^[0-9a-f]{64}$")
    images: int = Field(ge=0)
    agreement: float | None = Field(ge=0, le=1)
    champion_confidence: float | None = Field(ge=0, le=1)
    shadow_confidence: float | None = Field(ge=0, le=1)
    disagreements: dict[str, int]
    dropped_requests: int = Field(ge=0)


def parse_live(raw: bytes, where: str) -> dict[str, Any]:
    """The service's answer as checked statistics, or one line naming ``where`` and the field."""
    try:
        return LiveStats.model_validate_json(raw).model_dump()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(map(str, error["loc"])) or "body"
        raise MnistflowError(f"{where}: {field}: {error['msg']}") from None


def install_shadow(run: RunPaths, registry_paths: RegistryPaths, record: dict[str, Any]) -> dict[str, Any]:
    """Make the run's model the shadow (replacing any shadow there was); returns its record."""
    files = {name: getattr(run, field) for name, field in CHAMPION_FILES.items()
             if field and (name in REQUIRED or getattr(run, field).exists())}
    record = {**record, "model_sha256": atomic.sha256_of(files["model.pt"]),
              "files": {name: atomic.sha256_of(path) for name, path in sorted(files.items())}}
    install_files(registry_paths, 0, files, record, link=LINK)
    registry.append_history(registry_paths, {"event": "shadow installed", "run_id": record.get("run_id"),
                                             "model_sha256": record["model_sha256"], "reason": record.get("reason")})
    return record


def read_shadow(registry_paths: RegistryPaths) -> dict[str, Any] | None:
    """The shadow's record, its model checked against it; None when there is no shadow."""
    if not registry_paths.shadow_record.exists():
        return None
    try:
        record = json.loads(registry_paths.shadow_record.read_text())
    except ValueError:
        raise MnistflowError(f"{registry_paths.shadow_record}: not valid JSON; discard the shadow "
                             f"(python -m flows.judge_shadow --discard)") from None
    if atomic.sha256_of(registry_paths.shadow_model) != record.get("model_sha256"):
        raise MnistflowError(f"{registry_paths.shadow_model}: not the model its record names; discard the shadow "
                             "(python -m flows.judge_shadow --discard)")
    return record


def judge(live: dict[str, Any], thresholds: Thresholds) -> tuple[str, str]:
    """("wait" | "promote" | "discard", why) from the service's shadow statistics."""
    images = live.get("images", 0)
    if images < thresholds.min_images:
        return "wait", f"{images} shadowed images, fewer than min_images {thresholds.min_images}"
    agreement, ours, theirs = live["agreement"], live["shadow_confidence"], live["champion_confidence"]
    said = (f"agreement {agreement:.2%} over {images} images (min {thresholds.min_agreement:.0%}); mean confidence "
            f"{ours:.3f} against the champion's {theirs:.3f} (at most {thresholds.max_confidence_drop:g} lower)")
    if agreement >= thresholds.min_agreement and ours >= theirs - thresholds.max_confidence_drop:
        return "promote", said
    return "discard", said


def promote_shadow(registry_paths: RegistryPaths, judgement: dict[str, Any]) -> int:
    """The shadow becomes the next version and the champion, then stops shadowing."""
    record = read_shadow(registry_paths)
    if record is None:
        raise MnistflowError(f"no shadow in {registry_paths.shadow}: nothing to promote")
    folder = serving_folder(registry_paths, LINK)
    assert folder is not None
    kept = {k: v for k, v in record.items() if k not in ("files", "model_sha256", "version")}
    registry.promote(RunPaths(folder), registry_paths, {
        **kept, "reason": f"the shadow, promoted on live traffic: {judgement['reason']} (on the test set: "
                          f"{record.get('reason')})", "live": judgement})
    remove_link(registry_paths, LINK)
    return json.loads(registry_paths.champion_record.read_text())["version"]


def discard_shadow(registry_paths: RegistryPaths, judgement: dict[str, Any]) -> dict[str, Any] | None:
    """Stop shadowing; the history says which model and why. Returns the shadow's record."""
    try:
        record = read_shadow(registry_paths)
    except MnistflowError:
        record = None  # a damaged shadow is what a discard is for
    remove_link(registry_paths, LINK)
    registry.append_history(registry_paths, {"event": "shadow discarded", "run_id": (record or {}).get("run_id"),
                                             "model_sha256": (record or {}).get("model_sha256"),
                                             "reason": judgement.get("reason"), "live": judgement})
    return record

