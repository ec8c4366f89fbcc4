"""What the Prefect UI shows for a run: training progress, the per-epoch table,
and a markdown report with the metrics, the plots and any promotion decision."""

from __future__ import annotations

import base64
import csv
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from . import TASK_DEFAULTS


def start_progress(total_epochs: int) -> UUID | None:
    return create_progress_artifact(progress=0.0, key="training-progress",
                                    description=f"Training: 0 of {total_epochs} epochs")


def update_progress(artifact_id: UUID | None, row: dict[str, Any]) -> None:
    if artifact_id is None:
        return
    done, total = row["epoch"], row["total_epochs"]
    update_progress_artifact(
        artifact_id, progress=100.0 * done / total,
        description=f"Training: {done} of {total} epochs; val acc {100 * row['val_accuracy']:.2f}%")


def _image(path: Path) -> str:
    # Inline the PNG: the UI needs no file server to show it.
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{Path(path).stem}](data:image/png;base64,{encoded})"


@task(name="report", **TASK_DEFAULTS)
def report_task(metrics: dict[str, Any], history: Path, plots: list[Path],
                decision: dict[str, Any] | None = None) -> None:
    with open(history, newline="") as fh:
        rows = [{k: (round(float(v), 5) if "." in v else int(v)) for k, v in r.items()}
                for r in csv.DictReader(fh)]
    create_table_artifact(rows, key="epoch-metrics", description="Per-epoch training metrics")
    lines = [
        "# mnistflow training report", "",
        "| split | accuracy | loss |", "|---|---|---|",
        *(f"| {s} | {100 * metrics[s]['accuracy']:.2f}% | {metrics[s]['loss']:.4f} |" for s in ("val", "test")),
        "",
        f"Dataset `{metrics['dataset']['name']}` (digest `{metrics['dataset']['digest'][:12]}`), "
        f"{metrics['epochs']} epochs on `{metrics['device']['name']}` ({metrics['device']['reason']}).",
        "",
    ]
    if decision is not None:
        verdict = "**promoted**" if decision["promoted"] else "**not promoted**"
        lines += ["## Promotion", "", f"Challenger {verdict}: {decision['reason']}.", ""]
    lines += ["## Plots", ""] + [_image(p) for p in plots]
    create_markdown_artifact("\n".join(lines), key="training-report", description="Metrics, decision and plots")
