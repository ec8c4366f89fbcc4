"""The continuous-training loop end to end, with real parts: a real Prefect server and
a real process worker running the deployments of prefect.yaml, a real uvicorn
serving the champion, real dvc in a real git repository.

intake (CLI) -> mnistflow.data.added -> the retrain deployment's trigger -> a
warm-started challenger, judged and promoted -> the service answers with it ->
the rollback deployment -> the service answers with the old champion -> the
increment retracted -> mnistflow.data.retracted -> a retrain without it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from harness.real_parts import PrefectServer, Service, wait_for
from tests.helpers import copy_repo, custom_dir, dvc, git, make_arrays, run, write_dataset, write_params
from tests.integration.project import Project

pytestmark = pytest.mark.slow


def served_sha256(service: Service) -> str:
    with urllib.request.urlopen(f"{service.url}/health", timeout=10) as response:
        return json.loads(response.read())["model"]["sha256"]


def write_pictures(folder: Path, n: int, seed: int) -> None:
    """New labelled PNGs, black ink on white paper at 3x the size, as a phone or a scanner gives them."""
    arrays = make_arrays(n_train=n, n_test=1, seed=seed)
    for i, (image, label) in enumerate(zip(arrays["train-images"], arrays["train-labels"])):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - image).resize((84, 84)).save(folder / str(int(label)) / f"new-{i}.png")


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory):
    """A server of its own: its work pool, deployments and worker must not meet test_deployments'."""
    with PrefectServer(tmp_path_factory.mktemp("prefect-loop")) as server:
        yield server


@pytest.fixture(scope="module")
def loop(tmp_path_factory, loop_server):
    prefect_server = loop_server
    root = tmp_path_factory.mktemp("loop")
    checksums = write_dataset(root / "mirror")
    repo = copy_repo(root / "repo")
    project = Project(repo, prefect_server, root / "mirror", checksums)
    params = project.params(train={"warm_stages": [{"epochs": 1, "lr": 0.05}]})
    write_params(repo / "params.yaml", params)
    # A loop that must promote on tiny, noisy data: tolerate a small loss, retrain on 100 new items.
    spec = yaml.safe_load((repo / "prefect.yaml").read_text())
    retrain = next(d for d in spec["deployments"] if d["name"] == "retrain")
    retrain["parameters"].update(promotion_margin=-0.05, min_new_items=100)
    (repo / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    dvc(repo, "remote", "add", "-f", "-d", "local", str(root / "remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    project.prefect("work-pool", "create", "mnistflow", "--type", "process")
    project.prefect("deploy", "--all")
    project.start_worker()
    yield project
    project.kill_worker()


def retrain_runs(project: Project) -> list[dict]:
    deps = project.server.post("/deployments/filter", {"deployments": {"name": {"any_": ["retrain"]}}})
    return project.server.post("/flow_runs/filter", {
        "deployments": {"id": {"any_": [deps[0]["id"]]}},
        "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}}, "sort": "EXPECTED_START_TIME_ASC"})


def test_new_data_triggers_a_warm_started_retrain_that_serves_and_rolls_back(loop, tmp_path):
    repo, registry = loop.repo, loop.repo / "registry"
    # 1-2. A champion trained on the base data, served by a real uvicorn.
    first = loop.deployment_run("mnist-retraining/retrain")
    assert "Completed" in first.stdout
    base = json.loads((registry / "champion/record.json").read_text())
    assert base["version"] == 1 and base["warm_start"] is None  # no champion to start from yet
    with Service(registry / "champion/model.pt", repo, loop.env) as service:
        assert served_sha256(service) == base["model_sha256"]
        runs_before = len(retrain_runs(loop))

        # 3. A few hundred new labelled PNGs through intake, from the command line.
        pictures = tmp_path / "new"
        write_pictures(pictures, 300, seed=77)
        intake = run([sys.executable, "-m", "flows.intake", str(pictures)], repo, loop.env)
        increment = next(p for p in (custom_dir(repo / "data") / "increments").iterdir())
        assert f"increment {increment.name}" in intake.stdout
        manifest = json.loads((increment / "manifest.json").read_text())
        assert manifest["counts"]["accepted"] >= 250

        # 4. The event fires the retrain deployment; the challenger warm-starts and is promoted.
        triggered = wait_for(lambda: next((r for r in retrain_runs(loop)[runs_before:]
                                           if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")), None),
                             "the retrain run the event triggers", 400, every=0.5)
        assert triggered["state_type"] == "COMPLETED", loop.logs(triggered["id"], wait=0)
        assert triggered["parameters"]["trigger"]["increment"] == increment.name
        assert triggered["parameters"]["trigger"]["count"] == manifest["counts"]["accepted"]
        # Warm starting is the trigger's choice (prefect.yaml), not params.yaml's, and the log says from what.
        assert triggered["parameters"]["warm_start"] is True
        assert "warm start from the champion, version 1" in loop.logs(triggered["id"], "warm start from")
        # The retrain's git commit of dvc.lock agrees with the committed params.yaml: nothing is dirty.
        assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
        assert git(repo, "status", "--porcelain", "--", "params.yaml", "dvc.lock") == ""
        champion = json.loads((registry / "champion/record.json").read_text())
        assert champion["version"] == 2 and champion["run_id"] == triggered["id"]
        assert champion["warm_start"]["model_sha256"] == base["model_sha256"]
        assert champion["increments"] == [increment.name]
        assert champion["metrics"]["recent"]["size"] > 0

        # 5. The running service answers with the new champion.
        wait_for(lambda: served_sha256(service) == champion["model_sha256"], "the service to switch", 30)

        # 6. A rollback through its deployment; the service answers with the old champion.
        rolled = loop.deployment_run("mnist-rollback/rollback", "reason=test of the loop")
        assert "Completed" in rolled.stdout
        wait_for(lambda: served_sha256(service) == base["model_sha256"], "the service to switch back", 30)

    # 7. Every step's record is in the registry, and DVC has it all.
    records = [json.loads(p.read_text()) for p in sorted((registry / "runs").glob("*.json"))]
    assert [r["source"] for r in records] == ["retrain", "retrain", "rollback"]
    assert records[1]["trigger"]["increment"] == increment.name and records[1]["promoted"] is True
    assert records[2]["to_version"] == 1 and records[2]["reason"] == "test of the loop"
    restored = json.loads((registry / "champion/record.json").read_text())
    assert restored["rolled_back"]["from_version"] == 2 and restored["rolled_back"]["by"]["flow_run_id"]
    listing = run([sys.executable, "-m", "flows.rollback", "--list"], repo, loop.env).stdout
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines()[1:]}
    assert rows["1"] == "champion" and rows["2"] != "champion", listing
    status = dvc(repo, "status")
    assert "up to date" in status.stdout, status.stdout
    assert dvc(repo, "status", "-c").returncode == 0

    # 8. Retracting the increment fires the retrain deployment too; it trains without it.
    runs_before = len(retrain_runs(loop))
    retract = run([sys.executable, "-m", "flows.intake", "--retract", increment.name, "--reason", "test"], repo,
                  loop.env)
    assert retract.returncode == 0, retract.stdout + retract.stderr
    retrained = wait_for(lambda: next((r for r in retrain_runs(loop)[runs_before:]
                                       if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")), None),
                         "the retrain run the retraction triggers", 400, every=0.5)
    assert retrained["state_type"] == "COMPLETED", loop.logs(retrained["id"], wait=0)
    assert retrained["parameters"]["trigger"]["event"] == "mnistflow.data.retracted"
    assert retrained["parameters"]["trigger"]["increment"] == increment.name
    record = json.loads(sorted((registry / "runs").glob("*.json"))[-1].read_text())
    assert increment.name not in record["increments"]


def test_refused_intake_is_one_line_and_exit_2_and_writes_nothing(loop, tmp_path):
    folder = tmp_path / "bad"
    (folder / "12").mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(folder / "12" / "x.png")
    result = subprocess.run([sys.executable, "-m", "flows.intake", str(folder)], cwd=loop.repo, env=loop.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("mnistflow: error:")]
    assert error and "nothing added: all 1 items were refused" in error[0]
    assert "label '12' is not one of the dataset's classes" in result.stdout
    assert "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "flows.intake", str(tmp_path / "nowhere")], cwd=loop.repo,
                             env=loop.env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nowhere: no such file or folder")

