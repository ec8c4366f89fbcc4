"""The sweep's results: leaderboard.csv, sweep.png, and their Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lifecycle.leaderboard import leaderboard, plot_sweep, sorted_rows, write_leaderboard

from . import TASK_DEFAULTS


@task(name="leaderboard", **TASK_DEFAULTS)
def leaderboard_task(sweep_dir: Path, name: str, rows: list[dict[str, Any]], swept: list[str],
                     select: str) -> dict[str, str]:
    table = leaderboard(rows, swept, select)
    csv_path = write_leaderboard(sweep_dir / "leaderboard.csv", table)
    png_path = plot_sweep(sweep_dir / "sweep.png", rows, swept, name, select)
    ranked = sorted_rows(rows, select)
    create_table_artifact(table, key="sweep-leaderboard", description=f"Sweep {name}, best first by {select}")
    done = [r for r in ranked if r["status"] == "completed"]
    lines = [f"# Sweep `{name}`", "", f"{len(done)} of {len(rows)} trials completed; ranked by `{select}`.", ""]
    if done:
        top = done[0]
        values = ", ".join(f"{k}={top['overrides'].get(k)}" for k in swept)
        lines += [f"**Best: `{top['trial']}`** ({values}): "
                  f"validation accuracy {100 * top['val_accuracy']:.2f}%, "
                  f"test accuracy {100 * top['test_accuracy']:.2f}%.", ""]
    failed = [r for r in ranked if r["status"] != "completed"]
    lines += [f"- `{r['trial']}` failed: {r.get('reason', '')}" for r in failed]
    create_markdown_artifact("\n".join(lines), key="sweep-report", description=f"Sweep {name}")
    return {"leaderboard": str(csv_path), "plot": str(png_path)}
