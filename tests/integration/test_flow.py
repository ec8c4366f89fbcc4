"""The training flow, run as a user runs it, against a real Prefect server."""

import json
import sys

import pytest

from tests.helpers import run, tiny_params, write_params

# How long training took (training.json, which DVC does not track): every other byte is the same.
VARY_BY_RUN = {"training.json"}


def test_flow_runs_every_step_as_a_task_on_a_real_server(tmp_path, dataset, prefect_server):
    directory, checksums = dataset
    work = tmp_path / "work"
    work.mkdir()
    write_params(work / "params.yaml", tiny_params(directory, checksums))
    result = run([sys.executable, "-m", "flows.training"], work, prefect_server.env, check=True)
    assert "validation accuracy" in result.stdout
    # The progress thread uses the run's own API: no temporary Prefect server of its own (issue 39, 8).
    assert "temporary server" not in result.stdout + result.stderr
    assert "no longer updated" not in result.stdout + result.stderr

    metrics = json.loads((work / "outputs/metrics.json").read_text())
    assert {"accuracy", "loss"} <= set(metrics["val"]) and {"accuracy", "loss"} <= set(metrics["test"])
    assert (work / "outputs/plots/training.png").exists() and (work / "outputs/plots/confusion.png").exists()

    # the newest run started by hand (the session's server also holds deployments' runs)
    runs = prefect_server.post("/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"is_null_": True}, "state": {"type": {"any_": ["COMPLETED", "FAILED"]}}},
        "sort": "START_TIME_DESC", "limit": 1})
    flow_run = runs[0]
    assert flow_run["state_type"] == "COMPLETED"
    tasks = prefect_server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    names = sorted(t["name"].rsplit("-", 1)[0] if not t["name"].startswith("train-stage") else t["name"]
                   for t in tasks)
    assert names == ["download", "evaluate", "export-onnx", "model-card", "plot", "report", "select-device", "split",
                     "tensors-to-device", "train-stage-1-lr0.5", "train-stage-2-lr0.1"]
    assert all(t["state_type"] == "COMPLETED" for t in tasks)
    artifacts = prefect_server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    progress = next(a for a in artifacts if a["key"] == "training-progress")
    assert float(progress["data"]) == 100.0  # the last epoch's update reached the run's own server
    logs = prefect_server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    progress = [log["message"] for log in logs if "val acc" in log["message"]]
    assert len(progress) == 4 and progress[0].startswith("stage 1/2 epoch 1/2")


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_flow_and_dvc_stages_write_identical_bytes(tmp_path, dataset, prefect_server, kind):
    from tests.helpers import CNN_MODEL, CNN_TRAIN, PIPELINE_STAGES, stage

    directory, checksums = dataset
    network = {"model": CNN_MODEL, "train": CNN_TRAIN} if kind == "cnn" else {}
    by_flow, by_stages = tmp_path / "flow", tmp_path / "stages"
    for work in (by_flow, by_stages):
        work.mkdir()
        write_params(work / "params.yaml", tiny_params(directory, checksums, **network))
    run([sys.executable, "-m", "flows.training"], by_flow, prefect_server.env, check=True)
    for name in PIPELINE_STAGES:
        stage(by_stages, name, check=True)
    files = sorted(p.relative_to(by_flow) for p in (by_flow / "outputs").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(by_stages) for p in (by_stages / "outputs").rglob("*") if p.is_file())
    for rel in files:
        if rel.name in VARY_BY_RUN:
            continue
        assert (by_flow / rel).read_bytes() == (by_stages / rel).read_bytes(), rel
    # The model card differs only in the training time it reports.
    without_time = [[line for line in (work / "outputs/MODEL_CARD.md").read_text().splitlines()
                     if not line.startswith("- Trained:")] for work in (by_flow, by_stages)]
    assert without_time[0] == without_time[1]


def test_two_runs_in_different_folders_at_once_end_as_each_would_alone(tmp_path, dataset, prefect_server):
    import subprocess

    directory, checksums = dataset
    work = tmp_path / "work"
    work.mkdir()
    for name, lr in (("a", 0.5), ("b", 0.2)):
        write_params(work / f"{name}.yaml", tiny_params(directory, checksums,
                                                        train={"stages": [{"epochs": 3, "lr": lr}]}))
    alone = [sys.executable, "-m", "flows.training", "--params", "a.yaml", "--run-dir", "alone"]
    run(alone, work, prefect_server.env, check=True)
    together = [subprocess.Popen([sys.executable, "-m", "flows.training", "--params", f"{name}.yaml",
                                  "--run-dir", f"runs/{name}"], cwd=work, env=prefect_server.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in ("a", "b")]
    for proc in together:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    for rel in ("model.pt", "history.csv", "metrics.json", "split.json", "plots/training.png"):
        assert (work / "runs/a" / rel).read_bytes() == (work / "alone" / rel).read_bytes(), rel
    assert (work / "runs/b/model.pt").read_bytes() != (work / "runs/a/model.pt").read_bytes()
    assert not (work / "outputs").exists()
