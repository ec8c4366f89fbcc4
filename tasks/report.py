"""The run's report in the Prefect UI: the per-epoch table and a markdown summary
with the metrics, the plots and any promotion decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lifecycle.report import history_rows, report_markdown

from . import TASK_DEFAULTS, best_effort


@task(name="report", **TASK_DEFAULTS)
def report_task(evaluation: dict[str, Any], history: Path, plots: list[Path],
                decision: dict[str, Any] | None = None, versioning: dict[str, Any] | None = None) -> None:
    best_effort("the epoch-metrics table", lambda: create_table_artifact(
        history_rows(history), key="epoch-metrics", description="Per-epoch training metrics"))
    best_effort("the training report", lambda: create_markdown_artifact(
        report_markdown(evaluation, plots, decision, versioning), key="training-report", description="Metrics, decision and plots"))
