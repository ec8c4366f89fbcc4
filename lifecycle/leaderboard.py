"""A sweep's results: each trial's record, the ranking, leaderboard.csv and sweep.png.

Plain functions (no Prefect, no Dask): the sweep flow's leaderboard task and the
tests call them alike.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mnistflow import atomic

from .sweep_spec import SELECTABLE

RESULT_COLUMNS = ("val_accuracy", "val_loss", "test_accuracy", "train_seconds", "epochs",
                  "started_at", "finished_at", "worker", "status", "reason")
# A search's trials end in one of three states: completed ones rank, pruned ones (stopped by the
# pruner) follow by the value they had reached, failed ones last. Only a completed trial wins.
STATE_ORDER = {"completed": 0, "pruned": 1}


def best(rows: list[dict[str, Any]], select: str) -> dict[str, Any] | None:
    done = [r for r in rows if r["status"] == "completed"]
    if not done:
        return None
    return sorted_rows(done, select)[0]


def sorted_rows(rows: list[dict[str, Any]], select: str) -> list[dict[str, Any]]:
    """Completed trials first, best first by ``select``; pruned ones next, by the value they had
    reached; failed ones after, by id."""
    larger_is_better = SELECTABLE[select]

    def key(row: dict[str, Any]) -> tuple:
        order = STATE_ORDER.get(row["status"], 2)
        if order == 2 or row.get(select) in (None, ""):
            return (order, 0.0, row["trial"])
        value = float(row[select])
        return (order, -value if larger_is_better else value, row["trial"])

    return sorted(rows, key=key)


def leaderboard(rows: list[dict[str, Any]], swept: list[str], select: str) -> list[dict[str, Any]]:
    """One flat row per trial, best first: its id, each swept value (as JSON), its results."""
    return [{"trial": row["trial"], **{k: json.dumps(row["overrides"].get(k)) for k in swept},
             **{c: row.get(c, "") for c in RESULT_COLUMNS}} for row in sorted_rows(rows, select)]


def write_leaderboard(path: Path, table: list[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic.write_text(path, buffer.getvalue())
    return path


RECORD = "trial.json"


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """A trial's record (its overrides, status, times, worker and results), if it has one."""
    try:
        return json.loads((Path(run_dir) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    atomic.write_json(Path(run_dir) / RECORD, record)


def plot_sweep(path: Path, rows: list[dict[str, Any]], swept: list[str], name: str = "",
               select: str = "val_accuracy") -> Path:
    """Validation accuracy against each swept value, one panel per key; the best trial
    by ``select`` marked and named in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "completed"]
    winner = best(rows, select)
    fig, axes = plt.subplots(1, max(len(swept), 1), figsize=(4 * max(len(swept), 1), 3.5), squeeze=False)
    for ax, key in zip(axes[0], swept):
        values = [r["overrides"].get(key) for r in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        labels = sorted({json.dumps(v) for v in values}) if not numeric else None
        xs = values if numeric else [labels.index(json.dumps(v)) for v in values]
        ax.scatter(xs, [100 * float(r["val_accuracy"]) for r in done], label="trial")
        if winner is not None:
            at = done.index(winner)
            ax.scatter([xs[at]], [100 * float(winner["val_accuracy"])], marker="*", s=220, color="tab:red",
                       zorder=3, label=f"best by {select}")
            ax.legend(loc="lower right", fontsize=8)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        elif values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    title = f"Sweep {name}: " if name else "Sweep: "
    title += (f"best {winner['trial']} ({select} {float(winner[select]):.4f})" if winner is not None
              else "no trial completed")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path


def sweep_report(rows: list[dict[str, Any]], swept: list[str], name: str, select: str) -> str:
    """The sweep in a few lines of markdown: how many trials completed, the best, the failures."""
    ranked = sorted_rows(rows, select)
    done = [r for r in ranked if r["status"] == "completed"]
    lines = [f"# Sweep `{name}`", "", f"{len(done)} of {len(rows)} trials completed; ranked by `{select}`.", ""]
    if done:
        top = done[0]
        values = ", ".join(f"{k}={top['overrides'].get(k)}" for k in swept)
        lines += [f"**Best: `{top['trial']}`** ({values}): "
                  f"validation accuracy {100 * top['val_accuracy']:.2f}%, "
                  f"test accuracy {100 * top['test_accuracy']:.2f}%.", ""]
    stopped = [r for r in ranked if r["status"] != "completed"]
    lines += [f"- `{r['trial']}` {r['status']}: {r.get('reason', '')}" for r in stopped]
    return "\n".join(lines)
