"""The flows' task graphs in this process, on tiny data, under Prefect's own test harness
(a temporary Prefect server and database): what the flow calls, in which order, and what
promotion does with it. The command lines and workers are tested in test_flow.py and
test_deployments.py; this is the fast check of flows/ and tasks/ themselves."""

from __future__ import annotations

import json
import re

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from prefect.testing.utilities import prefect_test_harness

from flows.retrain import retraining
from flows.training import training
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import RunPaths

# One task run per step, and one per training stage, in the plain sequence's order; the
# device first, chosen once and checked before anything is written.
TRAINING_TASKS = ["select-device", "download", "split", "tensors-to-device", "train-stage-1-lr0.5",
                  "train-stage-2-lr0.1", "export-onnx", "evaluate", "model-card", "plot", "report"]


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def task_run_names(state) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC)
    return [re.sub(r"-[0-9a-f]{3}$", "", run.name) for run in runs]  # Prefect's "download-1a2"


def test_the_training_flow_calls_each_task_once_in_order(params, workdir):
    state = training(params=params, run_dir=workdir / "outputs", data_root=workdir / "data", return_state=True)
    result = state.result()
    assert task_run_names(state) == TRAINING_TASKS
    paths = RunPaths(workdir / "outputs")
    assert result["model"] == str(paths.model) and paths.metrics.exists() and paths.card.exists()
    assert result["device"] == "cpu"
    assert result["dvc"] == {"versioned": False,
                             "why": f"run folder {paths.dir} is not a DVC workspace; dvc.lock not updated"}
    metrics = json.loads(paths.evaluation.read_text())
    assert metrics["determinism"] == {"threads": 1, "deterministic_algorithms": False}


def test_retraining_promotes_then_skips_then_judges_with_the_margin(params, workdir):
    registry = RegistryPaths(workdir / "registry")
    run = {"params": params, "run_dir": workdir / "challenger", "data_root": workdir / "data",
           "registry_dir": registry.dir, "dvc_version": False}
    first = retraining(**run)
    assert first["promoted"] and first["reason"] == "no champion yet"
    champion = json.loads(registry.champion_record.read_text())
    assert champion["source"] == "retrain" and champion["promotion_margin"] == 0.0

    assert retraining(**run) == {"trained": False, "promoted": False, "reason": (
        "data, params and code unchanged since the champion was trained; nothing to do")}

    other = params.model_copy(update={"train": params.train.model_copy(update={"seed": 1})})
    judged = retraining(**{**run, "params": other}, promotion_margin=0.5)  # no model gains 50 points
    assert judged["trained"] and not judged["promoted"] and "margin +50.0000%" in judged["reason"]
    records = sorted(registry.runs.glob("*.json"))
    assert [json.loads(p.read_text()).get("promoted") for p in records] == [True, False, False]
    assert json.loads(registry.champion_record.read_text())["run_id"] == champion["run_id"]


def test_a_finished_run_trains_nothing_and_says_so_unless_from_scratch(params, workdir):
    from flows.training import summary

    run = {"params": params, "run_dir": workdir / "outputs", "data_root": workdir / "data"}
    first = training(**run)
    paths = RunPaths(workdir / "outputs")
    record = paths.training.read_bytes()
    again = training(**run)
    assert first["trained"] and not again["trained"]
    assert paths.training.read_bytes() == record  # the time of the run that trained, kept
    assert again["train_seconds"] == first["train_seconds"] == json.loads(record)["seconds"]
    assert "training was already complete" in summary(again, "(link)")
    checkpoint = paths.last_checkpoint.stat().st_mtime_ns
    scratch = training(**run, from_scratch=True)
    assert scratch["trained"] and paths.last_checkpoint.stat().st_mtime_ns != checkpoint
    assert scratch["test_accuracy"] == first["test_accuracy"]  # the same run again, from epoch 1


def test_intake_then_rollback_in_this_process(params, workdir):
    """The intake and rollback flows, called as functions: an increment written and its event's
    payload returned; a champion of two versions put back to the first, and the history says so."""
    from flows.intake import intake
    from flows.rollback import rollback
    from tests.helpers import new_items, write_idx_pair

    registry = RegistryPaths(workdir / "registry")
    run = {"params": params, "data_root": workdir / "data", "registry_dir": registry.dir, "dvc_version": False}
    assert retraining(**run, run_dir=workdir / "first")["promoted"]
    source = write_idx_pair(workdir / "new", *new_items(40, seed=0))  # the base data's classes
    added = intake(sources=[str(source)], params=params, data_root=workdir / "data", registry_dir=registry.dir,
                   min_label_probability=0.0)
    assert added["accepted"] == 40 and added["increment"] and not added["refused"]
    second = retraining(**run, run_dir=workdir / "second", promotion_margin=-1.0)
    assert second["promoted"], second
    assert json.loads(registry.champion_record.read_text())["version"] == 2

    event = rollback(to=1, reason="in-process test", registry_dir=registry.dir)
    assert (event["from_version"], event["to_version"]) == (2, 1)
    assert json.loads(registry.champion_record.read_text())["version"] == 1
    history = [json.loads(line) for line in (registry.dir / "history.jsonl").read_text().splitlines()]
    assert [h["event"] for h in history] == ["promotion", "promotion", "rollback"]


def test_the_monitor_flow_reads_a_service_in_this_process(params, workdir):
    """The monitor flow against the app served by uvicorn on a thread of this process."""
    import threading

    import httpx
    import numpy as np
    import uvicorn

    from flows.monitor import monitor
    from harness.real_parts import free_port
    from serving.service import create_app
    from tests.conftest import run_stages

    paths = run_stages(params, workdir / "data", RunPaths(workdir / "run"))
    server = uvicorn.Server(uvicorn.Config(create_app(paths.model), port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        url = f"http://127.0.0.1:{server.config.port}"
        pixels = np.random.default_rng(0).random((250, 784)).round(3).tolist()
        assert httpx.post(f"{url}/predict", json={"pixels": pixels}, timeout=60).status_code == 200
        report = monitor(service_url=url, profile_file=str(paths.profile))
    finally:
        server.should_exit = True
        thread.join(10)
    assert report["judged"] and report["drift"], report  # noise against digits' profile
    assert "confidence" in report["moved"] or "classes" in report["moved"]

    # The service stopped: nothing to watch is one line, and the run ends Skipped, not Failed.
    state = monitor(service_url=url, profile_file=str(paths.profile), return_state=True)
    assert (state.type.value, state.name) == ("COMPLETED", "Skipped")
    assert state.message.startswith(f"no service answers at {url}") and not state.result()["judged"]


def test_a_sweep_on_an_in_process_dask_cluster(dataset, workdir):
    """The sweep flow, called as a function, its trials on a Dask cluster in this process
    (threads, not worker processes): each trial trained or failed in its own folder, the
    leaderboard ranks them, and the failure is a row with its reason, not a crash."""
    import csv

    from distributed import LocalCluster

    from flows.sweep import sweep
    from lifecycle.sweep_spec import load_spec
    from tests.helpers import tiny_params, write_params, write_sweep

    write_params(workdir / "params.yaml", tiny_params(*dataset))
    spec = load_spec(write_sweep(workdir / "sweep.yaml", base=str(workdir / "params.yaml"),
                                grid={"train.stages.0.lr": [0.5, 1e30]}))
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        state = sweep(spec=spec, runs_root=workdir / "runs", data_root=workdir / "data",
                      dask_address=cluster.scheduler_address, return_state=True)
    result = state.result()
    assert (result["trials"], result["failed"]) == (2, 1)
    with open(workdir / "runs/tiny/leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["completed", "failed"] and "training loss is" in rows[1]["reason"]
    assert result["best"] == rows[0]["trial"] and (workdir / "runs/tiny" / rows[0]["trial"] / "model.pt").exists()
    names = task_run_names(state)
    assert names == ["download", "mnist-sweep-trials-0", "leaderboard"]  # the trials run in their own subflow
    assert rows[0]["worker"].startswith("inproc://"), rows[0]["worker"]  # on the cluster in this process


def test_a_search_on_an_in_process_dask_cluster_prunes_an_absurd_learning_rate(dataset, workdir):
    """A search of six trials, two at a time, over a sane and an absurd first-stage learning
    rate: the study's pruner stops absurd ones at the end of an early epoch (successive halving's
    rungs: epochs 1 and 2 of 4); each says so in its run folder, ranks after the completed
    trials, and never wins."""
    import csv
    import json

    from distributed import LocalCluster

    from flows.sweep import sweep
    from lifecycle.sweep_spec import load_spec
    from tests.helpers import tiny_params, write_params, write_sweep

    write_params(workdir / "params.yaml", tiny_params(*dataset))
    search = {"sampler": "tpe", "trials": 6, "seed": 0, "pruner": {"name": "successive_halving", "reduction_factor": 2},
              "params": {"train.stages.0.lr": {"choices": [0.5, 20.0]}, "model.hidden": {"choices": [[16], [24]]}}}
    spec = load_spec(write_sweep(workdir / "sweep.yaml", base=str(workdir / "params.yaml"), grid={}, search=search))
    with LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        state = sweep(spec=spec, runs_root=workdir / "runs", data_root=workdir / "data",
                      dask_address=cluster.scheduler_address, return_state=True)
    result = state.result()
    with open(workdir / "runs/tiny/leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and result["trials"] == 6
    absurd = [r for r in rows if json.loads(r["train.stages.0.lr"]) == 20.0]
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned and all(r in absurd for r in pruned), rows  # the sane rate reaches 100% on this data
    for row in pruned:
        folder = workdir / "runs/tiny" / row["trial"]
        record = json.loads((folder / "trial.json").read_text())
        epoch = record["pruned_at_epoch"]
        assert epoch in (1, 2) and row["epochs"] == str(epoch) and f"pruned at epoch {epoch}" in record["reason"]
        assert len((folder / "history.csv").read_text().splitlines()) == 1 + epoch  # it stopped at that epoch's end
        assert not (folder / "model.pt").exists()
    statuses = [r["status"] for r in rows]
    assert statuses == sorted(statuses, key=["completed", "pruned", "failed"].index)  # completed first
    assert json.loads(rows[0]["train.stages.0.lr"]) == 0.5 and result["best"] == rows[0]["trial"]
    assert (workdir / "runs/tiny/study.journal").exists() and (workdir / "runs/tiny/search.png").exists()
    weights = json.loads((workdir / "runs/tiny/importances.json").read_text())
    assert set(weights) <= {"train.stages.0.lr", "model.hidden"} and weights  # the rate decides here
