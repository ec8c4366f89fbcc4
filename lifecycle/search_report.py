"""What a search found, beside the leaderboard: the parameters' importances, and
``search.png``: the optimisation history (each trial's validation metric by trial
number, pruned ones at the value they had reached, and the best so far) and the
front of validation accuracy against training time over the completed trials.

Importances are Optuna's (fANOVA over the completed trials); with fewer than two
completed trials, or none that differ, there are none to give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnistflow import atomic

from .sweep_spec import SELECTABLE


def importances(study: Any) -> dict[str, float]:
    import optuna

    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError):  # too few completed trials, or a space with nothing that varied
        return {}


def front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed trials no other beats on both validation accuracy and training time, fastest first."""
    done = sorted((r for r in rows if r["status"] == "completed"),
                  key=lambda r: (float(r["train_seconds"]), -float(r["val_accuracy"])))
    kept, best = [], -1.0
    for row in done:
        if float(row["val_accuracy"]) > best:
            kept.append(row)
            best = float(row["val_accuracy"])
    return kept


def plot_search(path: Path, rows: list[dict[str, Any]], select: str, name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    number = {r["trial"]: int(r["trial"].lstrip("s")) for r in rows}
    fig, (history, pareto) = plt.subplots(1, 2, figsize=(10, 3.8))
    for status, marker in (("completed", "o"), ("pruned", "x")):
        chosen = [r for r in rows if r["status"] == status and r.get(select) not in (None, "")]
        history.scatter([number[r["trial"]] for r in chosen], [float(r[select]) for r in chosen], marker=marker,
                        label=status)
    done = sorted((r for r in rows if r["status"] == "completed"), key=lambda r: number[r["trial"]])
    if done:
        pick = max if SELECTABLE[select] else min
        best, line = None, []
        for row in done:
            best = float(row[select]) if best is None else pick(best, float(row[select]))
            line.append((number[row["trial"]], best))
        history.step(*zip(*line), where="post", color="tab:red", label="best so far")
    history.set(xlabel="trial", ylabel=select, title="optimisation history")
    history.legend(fontsize=8)
    for row in done:
        pareto.scatter(float(row["train_seconds"]), 100 * float(row["val_accuracy"]), color="tab:blue", s=14)
    edge = front(rows)
    if edge:
        pareto.plot([float(r["train_seconds"]) for r in edge], [100 * float(r["val_accuracy"]) for r in edge],
                    color="tab:red", marker="*", label="front")
        pareto.legend(fontsize=8)
    pareto.set(xlabel="training seconds", ylabel="validation accuracy (%)", title="accuracy against time")
    fig.suptitle(f"Search {name}", fontsize=10)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path


def search_markdown(rows: list[dict[str, Any]], weights: dict[str, float], image: str) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "pruned", "failed")}
    lines = ["# Search", "", ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    if weights:
        lines += ["| parameter | importance |", "|---|---|", *(f"| `{k}` | {v:.3f} |" for k, v in weights.items()), ""]
    lines += [f"![optimisation history and front](data:image/png;base64,{image})"]
    return "\n".join(lines)
