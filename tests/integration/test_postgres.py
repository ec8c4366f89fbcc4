"""Prefect's server on PostgreSQL, as a team runs it: a restart in the middle of a
deployment run, and two workers sharing one pool. (Every test in
test_deployments.py also runs against PostgreSQL.)"""

from __future__ import annotations

import functools
import json
import re
import subprocess

import pytest

from harness.real_parts import PrefectServer, stop_tree
from harness.real_parts import wait_for as wait_until
from tests.helpers import copy_repo, git, write_dataset, write_params
from tests.integration.project import PREFECT, Project

# OSError: the server may be restarting.
wait_for = functools.partial(wait_until, every=0.3, tolerate=(OSError,))

pytestmark = pytest.mark.slow
# Slow enough per epoch (tiny batches, wide layers) to act while it trains.
SLOW = {"train": {"batch_size": 4, "stages": [{"epochs": 6, "lr": 0.05}, {"epochs": 6, "lr": 0.01}]},
        "model": {"hidden": [1024, 1024]}}


@pytest.fixture
def project(tmp_path, postgres, request):
    database = postgres.create_database(re.sub(r"\W", "_", request.node.name)[:60].lower())
    (tmp_path / "prefect-home").mkdir()
    server = PrefectServer(tmp_path / "prefect-home", database_url=database).start()
    checksums = write_dataset(tmp_path / "mirror")
    repo = copy_repo(tmp_path / "repo")
    proj = Project(repo, server, tmp_path / "mirror", checksums)
    # A client that rides out a server restart (docs/operations.md).
    proj.env.update(PREFECT_CLIENT_MAX_RETRIES="12", PREFECT_CLIENT_RETRY_EXTRA_CODES="502,503")
    write_params(repo / "params.yaml", proj.params())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    proj.prefect("work-pool", "create", "mnistflow", "--type", "process")
    proj.prefect("deploy", "--all")
    workers: list[subprocess.Popen] = []
    proj.workers = workers
    yield proj
    for worker in [proj.worker, *workers]:
        stop_tree(worker)  # the worker and the flow-run processes it started
    server.stop()



def states(server: PrefectServer, flow_run_id: str) -> list[str]:
    return [s["type"] for s in sorted(server.get(f"/flow_run_states/?flow_run_id={flow_run_id}"),
                                      key=lambda s: s["timestamp"])]


def test_a_server_restart_mid_run_keeps_its_state_and_history_and_the_run_completes(project):
    from mnistflow.checkpoints import load_checkpoint

    project.start_worker()
    out = project.prefect("deployment", "run", "mnist-training/train",
                          "-p", f"params={json.dumps(project.params(**SLOW))}").stdout
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    checkpoint = project.repo / "outputs/checkpoints/last.pt"
    wait_for(lambda: checkpoint.exists() and load_checkpoint(checkpoint)["completed_epochs"] >= 2,
             "two epochs")
    before = project.logs(flow_run_id, expect="epoch 2/6")
    assert "stage 1/2 epoch 2/6" in before

    project.server.restart()  # same port, same PostgreSQL database
    assert project.server.get(f"/flow_runs/{flow_run_id}")["state_type"] == "RUNNING"  # it survived
    final = wait_for(lambda: project.server.get(f"/flow_runs/{flow_run_id}")["state_type"]
                     in ("COMPLETED", "FAILED", "CRASHED") and project.server.get(f"/flow_runs/{flow_run_id}"),
                     "the run to end")
    assert final["state_type"] == "COMPLETED", project.logs(flow_run_id, wait=0)
    history = states(project.server, flow_run_id)
    assert history[0] == "SCHEDULED" and history[-2:] == ["RUNNING", "COMPLETED"], history
    assert history.count("RUNNING") == 1, history  # never restarted from the top
    logs = project.logs(flow_run_id, expect="stage 2/2 epoch 6/6")
    assert "stage 1/2 epoch 1/6" in logs and "stage 2/2 epoch 6/6" in logs  # from before and after the restart
    assert load_checkpoint(checkpoint)["completed_epochs"] == 12


def test_two_workers_on_one_pool_run_each_run_exactly_once(project):
    logs = []
    for name in ("worker-a", "worker-b"):
        log = project.repo.parent / f"{name}.log"
        logs.append(log)
        project.workers.append(subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "mnistflow", "--name", name], cwd=project.repo, env=project.env,
            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
    # Four independent runs, each in its own folder, made through the API at once (the CLI
    # that makes them is test_deployments.py's; here the point is who takes them).
    deployment = project.server.get("/deployments/name/mnist-training/train")
    ids = [project.server.post(f"/deployments/{deployment['id']}/create_flow_run",
                               {"parameters": {"run_dir": f"runs/r{index}"}})["id"] for index in range(4)]
    for flow_run_id in ids:
        wait_for(lambda: project.server.get(f"/flow_runs/{flow_run_id}")["state_type"] == "COMPLETED",
                 f"run {flow_run_id}", timeout=400)
    for index, flow_run_id in enumerate(ids):
        assert states(project.server, flow_run_id).count("RUNNING") == 1
        assert (project.repo / f"runs/r{index}/metrics.json").exists()
    text = "".join(log.read_text() for log in logs)
    for flow_run_id in ids:  # each run was taken by one worker: any other attempt was refused by the server
        submitted = len(re.findall(rf"submitting flow run '{flow_run_id}'", text))
        refused = len(re.findall(rf"Aborted submission of flow run '{flow_run_id}'", text))
        assert submitted - refused == 1, text[-3000:]
