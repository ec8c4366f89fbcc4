"""What the docs list is what the files declare: the deployments of prefect.yaml and
the stages of dvc.yaml, by name (a count in prose went stale twice)."""

from __future__ import annotations

import re

import yaml

from tests.helpers import REPO


def _listed(text: str, opening: str) -> list[str]:
    """The backticked names in the parenthesis that follows ``opening``."""
    start = text.index(opening) + len(opening)
    inside = text[start:text.index(")", start)]
    return re.findall(r"`([^`]+)`", inside)


def test_operations_md_names_every_deployment_and_every_dvc_stage():
    operations = (REPO / "docs/operations.md").read_text()
    deployments = [d["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]]
    assert _listed(operations, "`prefect.yaml` declares these deployments (") == deployments
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert _listed(operations, "`dvc.yaml` declares the same pipeline as stages (") == stages


def test_the_monitor_schedule_ships_paused():
    monitor = next(d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
                   if d["name"] == "monitor")
    assert [s["active"] for s in monitor["schedules"]] == [False]
