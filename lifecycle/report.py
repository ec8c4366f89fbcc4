"""What a run's report says: the per-epoch table and the markdown summary.

Plain functions (no Prefect), so the same text can be shown in the Prefect UI,
printed, or tested.
"""

from __future__ import annotations

import base64
import csv
from pathlib import Path
from typing import Any


def history_rows(history: Path) -> list[dict[str, float | int]]:
    with open(history, newline="") as fh:
        return [{k: (round(float(v), 5) if "." in v or "e" in v else int(v)) for k, v in r.items()}
                for r in csv.DictReader(fh)]


def _image(path: Path) -> str:
    # Inline the PNG: the UI needs no file server to show it.
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{Path(path).stem}](data:image/png;base64,{encoded})"


def report_markdown(evaluation: dict[str, Any], plots: list[Path], decision: dict[str, Any] | None = None,
                    versioning: dict[str, Any] | None = None) -> str:
    lines = [
        "# mnistflow training report", "",
        "| split | accuracy | loss |", "|---|---|---|",
        *(f"| {s} | {100 * evaluation[s]['accuracy']:.2f}% | {evaluation[s]['loss']:.4f} |" for s in ("val", "test")),
        *([f"| recent ({evaluation['recent']['size']} added, held out) | {100 * evaluation['recent']['accuracy']:.2f}% "
           f"| {evaluation['recent']['loss']:.4f} |"] if (evaluation.get("recent") or {}).get("accuracy") is not None else []),
        "",
        f"Dataset `{evaluation['dataset']['name']}` (digest `{evaluation['dataset']['digest'][:12]}`), "
        f"{evaluation['epochs']} epochs on `{evaluation['device']['name']}` ({evaluation['device']['reason']}).",
        "",
    ]
    if decision is not None:
        verdict = "**promoted**" if decision["promoted"] else "**not promoted**"
        lines += ["## Promotion", "", f"Challenger {verdict}: {decision['reason']}.", ""]
        if decision.get("note"):
            lines += ["## Data", "", f"{decision['note'][0].upper()}{decision['note'][1:]}.", ""]
    if versioning is not None:
        lines += ["## DVC", "", ("Recorded in `dvc.lock` and the DVC cache." if versioning.get("versioned") else
                                 f"Not recorded: {versioning.get('why')}."), ""]
    lines += ["## Plots", ""] + [_image(p) for p in plots]
    return "\n".join(lines)
