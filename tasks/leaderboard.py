"""The sweep's results: leaderboard.csv, sweep.png, and their Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lifecycle.leaderboard import leaderboard, plot_sweep, sweep_report, write_leaderboard

from . import TASK_DEFAULTS


@task(name="leaderboard", **TASK_DEFAULTS)
def leaderboard_task(sweep_dir: Path, name: str, rows: list[dict[str, Any]], swept: list[str],
                     select: str) -> dict[str, str]:
    table = leaderboard(rows, swept, select)
    csv_path = write_leaderboard(sweep_dir / "leaderboard.csv", table)
    png_path = plot_sweep(sweep_dir / "sweep.png", rows, swept, name, select)
    create_table_artifact(table, key="sweep-leaderboard", description=f"Sweep {name}, best first by {select}")
    create_markdown_artifact(sweep_report(rows, swept, name, select), key="sweep-report", description=f"Sweep {name}")
    return {"leaderboard": str(csv_path), "plot": str(png_path)}
