"""Sweeps: the sweep file and its trials (unit), then real sweeps on a real Prefect
server and a real Dask LocalCluster of worker processes, on tiny data.

Here: the cases that start processes or servers; the others are in tests/unit/test_sweep.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from harness.real_parts import wait_for
from mnistflow.errors import MnistflowError
from tests.helpers import REPO, copy_repo, dvc, env_for, git, run, tiny_params, write_params, write_sweep

SWEEP = [sys.executable, "-m", "flows.sweep"]


@pytest.mark.parametrize("fields, named", [
    ({"colour": "red"}, "colour: unknown key"),
    ({"workers": 0}, "workers:"),
    ({"select": "test_accuracy"}, "select: must be a validation metric"),
    ({"grid": {}}, "grid: is empty"),
    ({"grid": {"train.stages.0.lr": []}}, "train.stages.0.lr: lists no values"),
    ({"grid": {"train.stages.0.lr": [0.5, -1]}}, "train.stages.0.lr: Input should be greater than 0"),
    ({"grid": {"model.hidden": [[16], [0]]}}, "model.hidden.0:"),
    ({"grid": {"train.stages.7.lr": [0.5]}}, "train.stages.7.lr: not a key"),
])
def test_bad_sweep_files_are_one_line_and_start_nothing(workdir, dataset, fields, named):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    path = write_sweep(workdir / "sweep.yaml", **fields)
    result = run([*SWEEP, str(path)], workdir, env_for(workdir))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mnistflow: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["params.yaml", "sweep.yaml"]


# Real sweeps: a Prefect server, a LocalCluster of 2 worker processes, tiny data.

def sweep_env(server) -> dict[str, str]:
    return {**server.env, "PATH": env_for(REPO)["PATH"]}


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("t-*/trial.json")}


def leaderboard(sweep_dir: Path) -> list[dict]:
    import csv

    with open(sweep_dir / "leaderboard.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_sweep_on_two_workers_overlaps_records_failures_and_resumes(tmp_path, dataset, prefect_server):
    write_params(tmp_path / "params.yaml", tiny_params(*dataset))
    # 6 trials: two diverge (lr 1e30: NaN) and are recorded as failed; the others go on.
    path = write_sweep(tmp_path / "sweep.yaml", grid={"train.stages.0.lr": [0.5, 0.1, 1e30],
                                                      "model.hidden": [[16], [32]]})
    result = run([*SWEEP, str(path)], tmp_path, sweep_env(prefect_server))
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_dir = tmp_path / "runs/tiny"
    rows = leaderboard(sweep_dir)
    assert len(rows) == 6 and [r["status"] for r in rows] == ["completed"] * 4 + ["failed"] * 2
    assert all("training loss is" in r["reason"] for r in rows[4:])
    accuracies = [float(r["val_accuracy"]) for r in rows[:4]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert {"train.stages.0.lr", "model.hidden", "test_accuracy", "train_seconds", "worker"} <= set(rows[0])
    assert f"best {rows[0]['trial']}" in result.stdout
    assert (sweep_dir / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    artifacts = prefect_server.post("/artifacts/filter", {"artifacts": {"key": {"any_": [
        "sweep-leaderboard", "sweep-report"]}}, "sort": "CREATED_DESC", "limit": 2})
    assert {a["key"]: a["type"] for a in artifacts} == {"sweep-leaderboard": "table", "sweep-report": "markdown"}
    # every log line of a trial's training says which trial it is: its task runs end with the trial id
    trials_run = prefect_server.post("/flow_runs/filter", {"flows": {"name": {"any_": ["mnist-sweep-trials"]}},
                                                           "sort": "START_TIME_DESC", "limit": 1})[0]
    stage_runs = [t["name"] for t in prefect_server.post("/task_runs/filter", {
        "flow_runs": {"id": {"any_": [trials_run["id"]]}}, "limit": 200}) if t["name"].startswith("train-stage-")]
    assert stage_runs and all(any(name.endswith(f"-{r['trial']}") for r in rows) for name in stage_runs), stage_runs
    # two worker processes, and trials that overlap in time
    done = [r for r in records(sweep_dir).values() if r["status"] == "completed"]
    assert len({r["worker"] for r in done}) == 2
    spans = sorted((datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"])) for r in done)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))

    # Started again: completed trials are kept, not trained again.
    before = {tid: (r, (sweep_dir / tid / "model.pt").stat().st_mtime_ns) for tid, r in records(sweep_dir).items()
              if r["status"] == "completed"}
    again = run([*SWEEP, str(path)], tmp_path, sweep_env(prefect_server))
    assert again.returncode == 0, again.stderr
    after = records(sweep_dir)
    for tid, (record, mtime) in before.items():
        assert after[tid] == record and (sweep_dir / tid / "model.pt").stat().st_mtime_ns == mtime


def _running_trial(sweep_dir: Path):
    from mnistflow.checkpoints import load_checkpoint

    for tid, record in records(sweep_dir).items():
        checkpoint = sweep_dir / tid / "checkpoints/last.pt"
        if record["status"] == "running" and checkpoint.exists():
            try:
                if load_checkpoint(checkpoint)["completed_epochs"] >= 1:
                    return tid, record
            except MnistflowError:
                pass  # being replaced
    return None


SLOW_TRIALS = {"model": {"hidden": [512, 512]},
               "train": {"batch_size": 4, "stages": [{"epochs": 3, "lr": 0.05}, {"epochs": 3, "lr": 0.01}]}}


@pytest.mark.slow
def test_killed_worker_and_killed_sweep_resume_from_checkpoints(tmp_path, dataset, prefect_server):
    write_params(tmp_path / "params.yaml", tiny_params(*dataset, **SLOW_TRIALS))
    path = write_sweep(tmp_path / "sweep.yaml", grid={"train.seed": [0, 1, 2, 3]})
    sweep_dir = tmp_path / "runs/tiny"

    # 1. SIGKILL the Dask worker process running a trial mid-training: the sweep completes.
    proc = subprocess.Popen([*SWEEP, str(path)], cwd=tmp_path, env=sweep_env(prefect_server),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    tid, record = wait_for(lambda: _running_trial(sweep_dir), "a trial mid-training", 300, every=0.1)
    os.kill(record["pid"], signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    rows = leaderboard(sweep_dir)
    assert [r["status"] for r in rows] == ["completed"] * 4, rows
    history = (sweep_dir / tid / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 6 and [line.split(",")[0] for line in history[1:]] == [str(i) for i in range(1, 7)]
    logs = prefect_server.post("/logs/filter", {"logs": {"level": {"ge_": 0}}, "sort": "TIMESTAMP_DESC", "limit": 200})
    assert any("resuming stage" in entry["message"] for entry in logs), "the killed trial resumed, not restarted"

    # 2. SIGKILL the whole sweep (flow and workers) mid-way; run again: finished trials stay.
    (tmp_path / "runs").rename(tmp_path / "first-runs")
    proc = subprocess.Popen([*SWEEP, str(path)], cwd=tmp_path, env=sweep_env(prefect_server),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: any(r["status"] == "completed" for r in records(sweep_dir).values())
             and _running_trial(sweep_dir), "one trial done and one mid-training", 300, every=0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {tid: r for tid, r in records(sweep_dir).items() if r["status"] == "completed"}
    again = run([*SWEEP, str(path)], tmp_path, sweep_env(prefect_server))
    assert again.returncode == 0, again.stdout + again.stderr
    after = records(sweep_dir)
    assert all(after[tid] == r for tid, r in finished.items())  # not trained again
    assert all(r["status"] == "completed" for r in after.values()) and len(after) == 4


@pytest.mark.slow
def test_apply_best_then_dvc_repro_reproduces_the_winner_byte_for_byte(tmp_path, dataset, prefect_server):
    repo = copy_repo(tmp_path / "repo")
    full = yaml.safe_load(yaml.safe_dump(tiny_params(*dataset)))
    from mnistflow.params import validate

    write_params(repo / "params.yaml", validate(full).model_dump(mode="json"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny")
    result = run([*SWEEP, str(write_sweep(repo / "sweep.yaml")), "--apply-best", "--promote"], repo,
                 sweep_env(prefect_server))
    assert result.returncode == 0, result.stdout + result.stderr
    best = leaderboard(repo / "runs/tiny")[0]["trial"]
    dvc(repo, "repro")
    for name in ("model.pt", "metrics.json", "history.csv", "model.onnx"):
        assert (repo / "outputs" / name).read_bytes() == (repo / "runs/tiny" / best / name).read_bytes(), name
    # --promote: the winner went through the retraining judge into the registry.
    assert "promoted: no champion yet" in result.stdout
    assert (repo / "registry/champion/model.pt").read_bytes() == (repo / "runs/tiny" / best / "model.pt").read_bytes()
    # Only the promoted trial is exported and carded, as `dvc repro` exports the same model.
    assert (repo / "registry/champion/model.onnx").read_bytes() == (repo / "outputs/model.onnx").read_bytes()
    assert (repo / "registry/champion/MODEL_CARD.md").exists()
    assert [p.parent.name for p in (repo / "runs/tiny").glob("*/model.onnx")] == [best]
    record = json.loads(next((repo / "registry/runs").glob("*.json")).read_text())
    assert record["source"] == f"sweep tiny, trial {best}" and record["promoted"] is True


@pytest.mark.slow
def test_sweep_on_an_existing_dask_cluster(tmp_path, dataset, prefect_server):
    """--dask-address: a scheduler and two workers started as a cluster operator would."""
    from tests.helpers import free_port

    write_params(tmp_path / "params.yaml", tiny_params(*dataset))
    env = sweep_env(prefect_server)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    cluster = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-dashboard"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        cluster += [subprocess.Popen([str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                                      "--no-dashboard", "--name", f"external-{i}"], cwd=tmp_path, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                    for i in range(2)]
        result = run([*SWEEP, str(write_sweep(tmp_path / "sweep.yaml")), "--dask-address", f"tcp://127.0.0.1:{port}"],
                     tmp_path, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Connecting to an existing Dask cluster at tcp://127.0.0.1:{port}" in result.stdout + result.stderr
        rows = leaderboard(tmp_path / "runs/tiny")
        assert [r["status"] for r in rows] == ["completed", "completed"]
    finally:
        for proc in cluster:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_a_search_stopped_with_sigterm_continues_its_study_on_two_workers(tmp_path, dataset, prefect_server):
    """A search of six trials on two worker processes, SIGTERM to the flow after its first
    trials, then started again: the study holds each trial once and exactly the budget,
    finished trials are not run again, both workers told the one study, and --apply-best
    takes a completed trial, never a pruned one."""
    import optuna

    from lifecycle.study import storage

    write_params(tmp_path / "params.yaml", tiny_params(*dataset))
    search = {"trials": 6, "seed": 0, "pruner": {"name": "successive_halving", "reduction_factor": 2},
              "params": {"train.stages.0.lr": {"choices": [0.5, 20.0]},
                         "train.stages.1.lr": {"low": 0.05, "high": 0.2, "log": True}}}
    path = write_sweep(tmp_path / "search.yaml", grid={}, search=search)
    sweep_dir = tmp_path / "runs/tiny"

    def finished() -> dict[str, dict]:
        found = {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("s*/trial.json")}
        return {tid: r for tid, r in found.items() if r["status"] in ("completed", "pruned")}

    proc = subprocess.Popen([*SWEEP, str(path)], cwd=tmp_path, env=sweep_env(prefect_server),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: len(finished()) >= 2, "two trials finished", 300, every=0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode != 0 and "Traceback" not in stderr, stderr[-2000:]
    before = finished()
    again = run([*SWEEP, str(path), "--apply-best", "--params-out", str(tmp_path / "best.yaml")], tmp_path,
                sweep_env(prefect_server))
    assert again.returncode == 0, again.stdout + again.stderr

    study = optuna.load_study(study_name="tiny", storage=storage(sweep_dir))
    assert sorted(t.number for t in study.trials) == list(range(6))  # each once, and the budget exactly
    assert all(t.state.is_finished() for t in study.trials)
    after = finished()
    assert all(after[tid] == record for tid, record in before.items())  # not run again
    assert len({r["worker"] for r in after.values()}) >= 2  # two worker processes told the one study
    top = leaderboard(sweep_dir)[0]
    assert top["status"] == "completed" and all(r["status"] != "pruned" or r["trial"] != top["trial"]
                                                for r in after.values())
    applied = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert applied["train"]["stages"][0]["lr"] == json.loads(top["train.stages.0.lr"])
