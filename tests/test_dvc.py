"""Real `dvc` commands in a temporary copy of the repository, on a small generated dataset.

The tests share one repository (module scope) and run in file order, each
starting from where the previous left it, as a user's session would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mnistflow.params import validate
from tests.helpers import copy_repo, dvc, env_for, git, run, tiny_params, write_dataset, write_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dvc")
    checksums = write_dataset(root / "mirror")
    repo = copy_repo(root / "repo")
    (repo / "outputs").mkdir(exist_ok=True)
    # DVC insists that every param a stage declares is present: write them all.
    full = validate(tiny_params(root / "mirror", checksums)).model_dump(mode="json")
    write_params(repo / "params.yaml", full)
    dvc(repo, "remote", "add", "-f", "-d", "local", str(root / "remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny params")
    return repo


def ran(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]


def edit_params(repo: Path, change) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    write_params(repo / "params.yaml", params)


def test_fresh_repro_runs_everything_then_nothing(repo):
    first = dvc(repo, "repro")
    assert ran(first) == ["download", "split", "train", "evaluate", "plot"]
    again = dvc(repo, "repro")
    assert ran(again) == [] and "Data and pipelines are up to date." in again.stdout
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    # data, checkpoints and metrics are DVC's, not git's
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])}
    assert {"data/custom", "outputs/model.pt", "outputs/checkpoints", "outputs/metrics.json"} <= outs
    tracked = git(repo, "ls-files").split()
    assert not [f for f in tracked if f.startswith(("data/custom", "outputs/"))]
    assert "outputs/metrics.json" in git(repo, "check-ignore", "outputs/metrics.json")


def test_metrics_and_plots_work_out_of_the_box(repo):
    shown = dvc(repo, "metrics", "show", "--json")
    metrics = json.loads(shown.stdout)
    data = next(iter(metrics.values()))["data"]["outputs/metrics.json"]["data"]
    assert 0 < data["val"]["accuracy"] <= 1 and 0 < data["test"]["accuracy"] <= 1
    dvc(repo, "plots", "show", "-o", "plots-html")
    html = (repo / "plots-html/index.html").read_text()
    assert "val_accuracy" in html and "train_loss" in html and "actual" in html
    shutil.rmtree(repo / "plots-html")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")


def test_training_param_reruns_training_onward_not_download(repo):
    edit_params(repo, lambda p: p["train"]["stages"][1].update(lr=0.05))
    result = dvc(repo, "repro")
    assert ran(result) == ["train", "evaluate", "plot"]
    assert "Stage 'download' didn't change" in result.stdout
    diff = dvc(repo, "metrics", "diff", "--json")
    assert "outputs/metrics.json" in json.loads(diff.stdout)
    dvc(repo, "plots", "diff", "-o", "plots-diff")
    assert (repo / "plots-diff/index.html").exists()
    shutil.rmtree(repo / "plots-diff")


def test_plot_option_reruns_only_plotting(repo):
    edit_params(repo, lambda p: p["plot"].update(dpi=50))
    assert ran(dvc(repo, "repro")) == ["plot"]
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lr 0.05, dpi 50")


def test_experiments_with_set_param(repo):
    dvc(repo, "exp", "run", "-n", "lower-lr", "-S", "train.stages.1.lr=0.02")
    table = dvc(repo, "exp", "show", "--csv").stdout.splitlines()
    header = table[0].split(",")
    assert "val.accuracy" in header and "train.stages" in " ".join(header)
    row = next(line for line in table if "lower-lr" in line)
    assert "0.02" in row
    # back to the committed state for the next tests
    git(repo, "checkout", "--", ".")
    dvc(repo, "checkout", "-f")
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_killed_repro_resumes_from_the_last_epoch(repo):
    edit_params(repo, lambda p: p["train"].update(stages=[{"epochs": 3, "lr": 0.5}, {"epochs": 3, "lr": 0.1}]))
    proc = subprocess.Popen([str(Path(sys.executable).with_name("dvc")), "repro"], cwd=repo,
                            env=env_for(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "stage 2/2 epoch 1/3" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # dvc and its stage process, mid-training
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    result = dvc(repo, "repro")
    assert "resuming stage 2 at epoch 2 of 3" in result.stderr, result.stderr
    assert "stage 1/2 epoch 1/3" not in result.stderr
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    history = (repo / "outputs/history.csv").read_text().splitlines()
    assert len(history) == 1 + 6
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "3+3 epochs")


def test_two_repros_at_once_do_not_corrupt_anything(repo):
    edit_params(repo, lambda p: p["train"]["stages"][0].update(lr=0.4))
    first = subprocess.Popen([str(Path(sys.executable).with_name("dvc")), "repro"], cwd=repo,
                             env=env_for(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    second = dvc(repo, "repro", check=False)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    if second.returncode != 0:
        assert "lock" in (second.stderr + second.stdout).lower()
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    assert json.loads((repo / "outputs/metrics.json").read_text())["val"]["accuracy"] > 0


def test_push_then_fresh_clone_pulls_everything_without_retraining(repo, tmp_path):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lr 0.4")
    dvc(repo, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, check=True)
    dvc(clone, "pull")
    for rel in ("data/custom/train-images-idx3-ubyte", "outputs/model.pt", "outputs/metrics.json",
                "outputs/checkpoints/last.pt", "outputs/plots/training.png"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
    assert ran(dvc(clone, "repro")) == []


def test_flow_run_leaves_dvc_up_to_date(repo, prefect_server):
    shutil.rmtree(repo / "outputs")
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    run([sys.executable, "-m", "flows.training"], repo, env, check=True)
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
