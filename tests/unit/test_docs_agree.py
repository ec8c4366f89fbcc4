"""What the docs list is what the files declare: the deployments of prefect.yaml and
the stages of dvc.yaml, by name (a count in prose went stale twice); and every preset
and sweep file shipped is one a user can run."""

from __future__ import annotations

import re

import pytest
import yaml

from flows.sweep import trials_of
from lifecycle.sweep_spec import load_spec
from mnistflow.params import load_params
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


@pytest.mark.parametrize("preset", sorted((REPO / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_is_a_valid_params_file(preset):
    load_params(preset)


@pytest.mark.parametrize("sweep", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_plans_its_trials(sweep, monkeypatch):
    monkeypatch.chdir(REPO)  # a sweep's base is relative to where it is run: the repository
    assert trials_of(load_spec(sweep))
