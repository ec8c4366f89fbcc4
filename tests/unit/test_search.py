"""A sweep's search section: the issue's own file works as written, and a space the params
schema refuses is one line before any trial starts. In this process; the searches run in
tests/integration/test_flow_graph.py and tests/integration/test_sweep.py."""

from __future__ import annotations

import optuna
import pytest
import yaml

from flows.sweep import trials_of
from lifecycle.leaderboard import best, sorted_rows
from lifecycle.search_spec import Search
from lifecycle.study import open_study, overrides_of, suggest
from lifecycle.sweep_spec import load_spec
from mnistflow.errors import MnistflowError
from tests.helpers import REPO

AS_WRITTEN = """\
name: lr-and-width
base: params.yaml
search:
  sampler: tpe
  trials: 8
  seed: 0
  pruner: {name: successive_halving}      # or hyperband, or none
  params:
    train.stages.0.lr: {low: 0.0001, high: 50.0, log: true}
    model.hidden: {choices: [[32], [64]]}
select: val_accuracy
workers: 2
"""


def spec_file(tmp_path, search: dict, **fields) -> object:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": str(REPO / "params.yaml"), "search": search, **fields}))
    return path


def test_the_issues_file_works_as_written(tmp_path):
    (tmp_path / "search.yaml").write_text(AS_WRITTEN.replace("base: params.yaml", f"base: {REPO / 'params.yaml'}"))
    spec = load_spec(tmp_path / "search.yaml")
    assert spec.trial_count == 8 and spec.search.pruner.name == "successive_halving"
    assert [t.id for t in trials_of(spec)] == ["base"]  # the study draws the trials as it goes


@pytest.mark.parametrize("search, says", [
    ({"trials": 4, "params": {"train.stages.0.learning_rate": {"low": 0.1, "high": 1.0}}},
     "learning_rate"),
    ({"trials": 4, "params": {"train.stages.0.lr": {"low": -1.0, "high": 1.0}}},
     "search.params.train.stages.0.lr = -1.0"),
    ({"trials": 4, "params": {"train.stages.0.lr": {"low": 0.0, "high": 1.0, "log": True}}},
     "log: true needs low > 0"),
    ({"trials": 4, "params": {"train.batch_size": {"low": 10.5, "high": 100, "integer": True}}},
     "integer: true needs whole low and high"),
    ({"trials": 4, "params": {"data.val_fraction": {"low": 0.1, "high": 0.3}}}, "the data section is not searched"),
    ({"trials": 4, "pruner": {"name": "median"}, "params": {"train.stages.0.lr": {"low": 0.1, "high": 1.0}}},
     "pruner.name"),
    ({"trials": 4, "params": {"train.stages.0.lr": 0.5}}, "give {low, high}"),
    ({"trials": 4, "startup_trials": 0, "params": {"train.stages.0.lr": {"low": 0.1, "high": 1.0}}},
     "startup_trials"),
])
def test_a_space_the_params_refuse_is_one_line_before_any_trial(tmp_path, search, says):
    with pytest.raises(MnistflowError) as refused:
        trials_of(load_spec(spec_file(tmp_path, search)))
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_a_search_replaces_the_grid(tmp_path):
    search = {"trials": 4, "params": {"train.stages.0.lr": {"low": 0.1, "high": 1.0}}}
    with pytest.raises(MnistflowError, match="search: replaces grid:, random: and seeds:"):
        load_spec(spec_file(tmp_path, search, grid={"model.hidden": [[32]]}))


def test_suggestions_stay_in_the_space_and_a_reopened_study_gives_them_back(tmp_path):
    search = Search.model_validate({"trials": 5, "seed": 3, "params": {
        "train.stages.0.lr": {"low": 0.01, "high": 1.0, "log": True},
        "train.batch_size": {"low": 32, "high": 256, "integer": True, "step": 32},
        "model.hidden": {"choices": [[32], [64, 32]]}}})
    study = open_study("s", search, "val_accuracy", tmp_path, 4)
    asked = [study.ask() for _ in range(5)]
    drawn = [suggest(t, search) for t in asked]
    for values in drawn:
        assert 0.01 <= values["train.stages.0.lr"] <= 1.0 and values["train.batch_size"] % 32 == 0
        assert values["model.hidden"] in ([32], [64, 32])
    again = open_study("s", search, "val_accuracy", tmp_path, 4)  # the journal file, read by another study object
    assert [overrides_of(t, search) for t in again.trials] == drawn
    assert all(t.state == optuna.trial.TrialState.RUNNING for t in again.trials)


def test_a_pruned_trial_ranks_after_the_completed_and_never_wins():
    rows = [{"trial": "p", "status": "pruned", "val_accuracy": 0.99},
            {"trial": "f", "status": "failed"},
            {"trial": "c", "status": "completed", "val_accuracy": 0.9}]
    assert [r["trial"] for r in sorted_rows(rows, "val_accuracy")] == ["c", "p", "f"]
    assert best(rows, "val_accuracy")["trial"] == "c"
    assert best([rows[0], rows[1]], "val_accuracy") is None
