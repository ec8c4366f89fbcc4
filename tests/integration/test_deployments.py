"""Deployments from prefect.yaml on a real server and a real process worker,
driven through the `prefect` CLI, as the README tells a user to."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.helpers import copy_repo, dvc, git, write_dataset, write_params
from tests.integration.project import Project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment_server(request, tmp_path_factory):
    """Every deployment test runs against Prefect's default database, SQLite, and
    against PostgreSQL, what a team's server uses (docs/operations.md)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("prefect_server")
        return
    from harness.real_parts import PrefectServer

    database = request.getfixturevalue("postgres").create_database("prefect_deployments")
    server = PrefectServer(tmp_path_factory.mktemp("prefect-postgres"), database_url=database).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory, deployment_server):
    root = tmp_path_factory.mktemp("deploy")
    checksums = write_dataset(root / "mirror")
    repo = copy_repo(root / "repo")
    proj = Project(repo, deployment_server, root / "mirror", checksums)
    write_params(repo / "params.yaml", proj.params())
    dvc(repo, "remote", "add", "-f", "-d", "local", str(root / "remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    proj.prefect("work-pool", "create", "mnistflow", "--type", "process")
    proj.prefect("gcl", "create", "mnistflow-outputs", "--limit", "1")
    proj.prefect("deploy", "--all")
    proj.start_worker()
    yield proj
    proj.kill_worker()


def test_deployments_come_from_prefect_yaml_with_typed_params_and_a_weekly_schedule(project):
    deps = {d["name"]: d for d in project.server.post("/deployments/filter", {})}
    assert {"train", "retrain"} <= set(deps)
    schema = deps["train"]["parameter_openapi_schema"]
    assert "params" in schema["properties"]
    text = json.dumps(schema)
    for field in ("val_fraction", "hidden", "stages", "batch_size"):
        assert field in text  # params.yaml's schema, shown as a form in the UI
    sweep = json.dumps(deps["sweep"]["parameter_openapi_schema"])
    for field in ("sweep_file", "dask_address", "workers", "apply_best", "grid", "select"):
        assert field in sweep  # the sweep file's schema and the engine's settings, typed
    schedules = deps["retrain"]["schedules"]
    assert schedules and schedules[0]["schedule"]["cron"] == "0 3 * * 1"
    assert deps["train"]["concurrency_limit"] == 1 or deps["train"].get("global_concurrency_limit")


def test_manual_run_completes_with_artifacts(project):
    result = project.deployment_run("mnist-training/train")
    assert "Completed" in result.stdout
    assert (project.repo / "outputs/metrics.json").exists()
    flow_run = project.last_run("train")
    assert flow_run["state_type"] == "COMPLETED"
    artifacts = project.server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    kinds = {a["key"]: a["type"] for a in artifacts}
    assert kinds.get("training-progress") == "progress"
    assert kinds.get("epoch-metrics") == "table"
    assert kinds.get("training-report") == "markdown"
    progress = next(a for a in artifacts if a["key"] == "training-progress")
    assert float(progress["data"]) == 100.0
    report = next(a for a in artifacts if a["key"] == "training-report")
    assert "data:image/png;base64," in report["data"] and "| test |" in report["data"]


def test_failing_run_ends_failed_with_the_reason_in_its_logs(project):
    bad = project.params(train={"stages": [{"epochs": 1, "lr": 1e30}]})
    result = project.deployment_run("mnist-training/train", f"params={json.dumps(bad)}", check=False)
    assert result.returncode == 1 and "Failed" in result.stdout + result.stderr
    flow_run = project.last_run("train")
    assert flow_run["state_type"] == "FAILED"
    assert "stage 1 epoch 1: training loss is" in project.logs(flow_run["id"], expect="training loss is")


def test_retraining_promotes_then_skips_then_keeps_a_better_champion(project):
    registry = project.repo / "registry"
    first = project.deployment_run("mnist-retraining/retrain")
    assert "Completed" in first.stdout
    records = sorted((registry / "runs").glob("*.json"))
    record = json.loads(records[-1].read_text())
    assert record["promoted"] is True and record["reason"] == "no champion yet"
    assert {"run_id", "time", "data_digest", "params", "metrics"} <= set(record)
    assert record["dvc"]["versioned"] is True
    assert "retrain" in git(project.repo, "log", "-1", "--format=%s")
    assert dvc(project.repo, "status", "-c").returncode == 0  # pushed: the remote has it all
    champion = (registry / "champion/model.pt").read_bytes()

    project.deployment_run("mnist-retraining/retrain")
    record = json.loads(sorted((registry / "runs").glob("*.json"))[-1].read_text())
    assert record["trained"] is False and "unchanged since the champion" in record["reason"]
    assert "unchanged since the champion" in project.logs(project.last_run("retrain")["id"], expect="unchanged")

    # A worse challenger (one short epoch at a tiny learning rate) must not be promoted.
    good = (project.repo / "params.yaml").read_text()
    edit = yaml.safe_load(good)
    edit["train"]["stages"] = [{"epochs": 1, "lr": 1e-4, "schedule": "constant"}]
    write_params(project.repo / "params.yaml", edit)
    git(project.repo, "commit", "-qam", "a worse recipe")
    project.deployment_run("mnist-retraining/retrain")
    record = json.loads(sorted((registry / "runs").glob("*.json"))[-1].read_text())
    assert record["trained"] is True and record["promoted"] is False
    assert record["challenger_test_accuracy"] < record["champion_test_accuracy"]
    assert "champion kept" in record["reason"]
    assert (registry / "champion/model.pt").read_bytes() == champion
    report = project.server.post("/artifacts/filter", {"artifacts": {"key": {"any_": ["training-report"]}},
                                                        "sort": "CREATED_DESC", "limit": 1})[0]
    assert "not promoted" in report["data"]
    (project.repo / "params.yaml").write_text(good)
    git(project.repo, "commit", "-qam", "back to the good recipe")


def test_killed_worker_then_run_again_resumes_and_completes(project):
    from mnistflow.checkpoints import load_checkpoint

    # Slow enough per epoch (tiny batches, wide layers) to kill it mid-training.
    slow = project.params(train={"batch_size": 4, "stages": [{"epochs": 8, "lr": 0.05}, {"epochs": 8, "lr": 0.01}]},
                          model={"hidden": [1024, 1024]})
    checkpoint = project.repo / "outputs/checkpoints/last.pt"
    checkpoint.unlink(missing_ok=True)
    out = project.prefect("deployment", "run", "mnist-training/train", "-p", f"params={json.dumps(slow)}").stdout
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    deadline = time.monotonic() + 300
    while not (checkpoint.exists() and load_checkpoint(checkpoint)["completed_epochs"] >= 2):
        assert time.monotonic() < deadline, project.logs(flow_run_id, wait=0)
        time.sleep(0.1)
    project.kill_worker()  # the worker and the flow run's process, mid-training
    done = load_checkpoint(checkpoint)["completed_epochs"]
    assert 2 <= done < 16
    # What zombie detection does (README: an automation on missing heartbeats).
    project.server.post(f"/flow_runs/{flow_run_id}/set_state",
                        {"state": {"type": "CRASHED", "name": "Crashed"}, "force": True})
    project.start_worker()
    result = project.deployment_run("mnist-training/train", f"params={json.dumps(slow)}")
    assert "Completed" in result.stdout
    logs = project.logs(project.last_run("train")["id"], expect="stage 2/2 epoch 8/8")
    assert "stage 2/2 epoch 8/8" in logs
    assert "stage 1/2 epoch 1/8" not in logs  # resumed, not restarted
    assert load_checkpoint(checkpoint)["completed_epochs"] == 16


def test_sweep_deployment_fans_trials_out_on_dask(project):
    (project.repo / "sweeps/tiny.yaml").write_text(yaml.safe_dump(
        {"name": "deployed", "grid": {"train.stages.0.lr": [0.5, 0.1]}, "workers": 2}))
    result = project.deployment_run("mnist-sweep/sweep", "sweep_file=sweeps/tiny.yaml")
    assert "Completed" in result.stdout
    board = (project.repo / "runs/deployed/leaderboard.csv").read_text().splitlines()
    assert len(board) == 3 and all(",completed," in line for line in board[1:])
