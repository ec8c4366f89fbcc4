"""The events the data's flows emit, on which the retrain deployment's trigger fires (prefect.yaml)."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

DATA_ADDED = "mnistflow.data.added"
DATA_RETRACTED = "mnistflow.data.retracted"


def dataset_resource(dataset: str) -> str:
    return f"mnistflow.dataset.{dataset}"


def emit_data_event(event: str, dataset: str, payload: dict[str, Any]) -> None:
    emit_event(event=event, resource={"prefect.resource.id": dataset_resource(dataset),
                                      "prefect.resource.name": dataset}, payload=payload)


def emit_data_added(dataset: str, increment: str, count: int, classes: dict[str, int]) -> None:
    emit_data_event(DATA_ADDED, dataset, {"increment": increment, "count": count, "classes": classes})
