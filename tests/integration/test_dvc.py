"""Real `dvc` commands in a temporary copy of the repository, on a small generated dataset.

One full `dvc repro` is made once (a module fixture, committed to git); each
test then works in its own copy of that repository, so no test depends on
another having run first.
"""

from __future__ import annotations

import hashlib
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
from tests.helpers import (
    PIPELINE_STAGES,
    copy_repo,
    custom_dir,
    dvc,
    env_for,
    git,
    run,
    tiny_params,
    write_dataset,
    write_params,
)

pytestmark = pytest.mark.slow


class Reproduced:
    """A repository after its first `dvc repro`, committed, and what that repro printed."""

    def __init__(self, repo: Path, first: subprocess.CompletedProcess) -> None:
        self.repo, self.first = repo, first


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Reproduced:
    root = tmp_path_factory.mktemp("dvc")
    checksums = write_dataset(root / "mirror")
    repo = copy_repo(root / "repo")
    # DVC insists that every param a stage declares is present: write them all.
    full = validate(tiny_params(root / "mirror", checksums)).model_dump(mode="json")
    write_params(repo / "params.yaml", full)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny params")
    first = dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return Reproduced(repo, first)


@pytest.fixture
def repo(reproduced, tmp_path) -> Path:
    """This test's own copy of the reproduced repository, with its own remote."""
    copy = Path(shutil.copytree(reproduced.repo, tmp_path / "repo", symlinks=True))
    dvc(copy, "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    git(copy, "commit", "-qam", "this test's remote")
    return copy


def ran(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]


def edit_params(repo: Path, change) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    write_params(repo / "params.yaml", params)


def test_fresh_repro_runs_everything_then_nothing(reproduced, repo):
    assert ran(reproduced.first) == list(PIPELINE_STAGES)
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


def test_training_param_reruns_training_onward_not_download(repo):
    edit_params(repo, lambda p: p["train"]["stages"][1].update(lr=0.05))
    result = dvc(repo, "repro")
    assert ran(result) == ["train", "export", "evaluate", "plot", "card"]
    assert "Stage 'download' didn't change" in result.stdout
    diff = dvc(repo, "metrics", "diff", "--json")
    assert "outputs/metrics.json" in json.loads(diff.stdout)
    dvc(repo, "plots", "diff", "-o", "plots-diff")
    assert (repo / "plots-diff/index.html").exists()
    shutil.rmtree(repo / "plots-diff")


def test_plot_option_reruns_only_plotting(repo):
    edit_params(repo, lambda p: p["plot"].update(dpi=50))
    assert ran(dvc(repo, "repro")) == ["plot"]


def test_code_change_reruns_every_stage_without_downloading_again(repo):
    """Code every stage imports (mnistflow/code.py derives it) reruns them all; the data is
    persisted and re-verified."""
    from mnistflow.code import dvc_stage_files

    assert all(Path("mnistflow/errors.py") in dvc_stage_files(stage, repo) for stage in PIPELINE_STAGES)
    path = repo / "mnistflow" / "errors.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    result = dvc(repo, "repro")
    assert ran(result) == list(PIPELINE_STAGES)
    assert "fetched" not in result.stderr  # verified in place, not fetched again
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_experiments_with_set_param(repo):
    dvc(repo, "exp", "run", "-n", "lower-lr", "-S", "train.stages.1.lr=0.02")
    table = dvc(repo, "exp", "show", "--csv").stdout.splitlines()
    header = table[0].split(",")
    assert "val.accuracy" in header and "train.stages" in " ".join(header)
    row = next(line for line in table if "lower-lr" in line)
    assert "0.02" in row
    # metrics.json is the few numbers people compare, so the comparison fits a terminal
    assert [c for c in header if c.startswith(("val.", "test."))] == [
        "test.accuracy", "test.loss", "val.accuracy", "val.loss"]
    # With a scalar param moved, the comparison the docs give fits a 120-column terminal
    # (a list param, such as train.stages, is one column as wide as its JSON).
    dvc(repo, "exp", "remove", "lower-lr")
    git(repo, "checkout", "--", ".")  # the experiment's params stay in the workspace: back to the commit's
    dvc(repo, "checkout", "-f")
    dvc(repo, "exp", "run", "-n", "seed-3", "-S", "train.seed=3")
    compared = dvc(repo, "exp", "show", "--only-changed", "--drop", "Created|.*/.*", "--md").stdout.splitlines()
    assert "seed-3" in "\n".join(compared) and "train.seed" in compared[0]
    assert max(map(len, compared)) <= 120, compared
    # back to the committed state for the next tests
    git(repo, "checkout", "--", ".")
    dvc(repo, "checkout", "-f")
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_a_failed_train_stage_leaves_the_last_model_and_history_in_place(repo):
    """A user's mistake that stops the train stage (a GPU this machine lacks) is one line,
    and DVC has not deleted the model and history the last run made (persist: true)."""
    model, history = (repo / "outputs/model.pt").read_bytes(), (repo / "outputs/history.csv").read_bytes()
    edit_params(repo, lambda p: p.update(device="cuda:7"))
    failed = dvc(repo, "repro", check=False)
    assert failed.returncode != 0 and "mnistflow: error: device: cuda:7" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert (repo / "outputs/model.pt").read_bytes() == model and (repo / "outputs/history.csv").read_bytes() == history
    git(repo, "checkout", "--", "params.yaml")
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
    dvc(repo, "push")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, check=True)
    dvc(clone, "pull")
    images = (custom_dir(repo / "data") / "train-images-idx3-ubyte").relative_to(repo)
    for rel in (images, "outputs/model.pt", "outputs/metrics.json",
                "outputs/checkpoints/last.pt", "outputs/plots/training.png"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert dvc(clone, "status").stdout.strip() == "Data and pipelines are up to date."
    assert ran(dvc(clone, "repro")) == []


def test_after_a_flow_run_in_a_fresh_clone_the_dvc_commands_work(tmp_path, prefect_server):
    """No DVC cache, no remote, and a dvc.lock made elsewhere: the flow records its
    outputs (`dvc commit`), so the commands the README shows describe this run."""
    checksums = write_dataset(tmp_path / "mirror")
    repo = copy_repo(tmp_path / "repo")
    write_params(repo / "params.yaml", validate(tiny_params(tmp_path / "mirror", checksums)).model_dump(mode="json"))
    assert not (repo / ".dvc/cache").exists() and not (repo / "outputs").exists()
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    result = run([sys.executable, "-m", "flows.training"], repo, env, check=True)
    assert "DVC          recorded in dvc.lock and the DVC cache" in result.stdout
    assert (result.stdout + result.stderr).count("Updating lock file") == 1  # DVC's line, once (it was twice)

    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    metrics = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    recorded = next(iter(metrics.values()))["data"]["outputs/metrics.json"]["data"]
    assert recorded["test"]["accuracy"] == json.loads((repo / "outputs/metrics.json").read_text())["test"]["accuracy"]
    plots = dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    assert "failed to load" not in plots.stdout + plots.stderr
    assert (tmp_path / "plots/index.html").exists()
    assert dvc(repo, "repro").stdout.count("didn't change, skipping") == len(PIPELINE_STAGES)  # DVC agrees: nothing to do

    # A run of other params (a preset) in the workspace is not recorded, and says so: in
    # its summary, in its log, and in its report.
    other = write_params(tmp_path / "preset.yaml", validate(tiny_params(tmp_path / "mirror", checksums,
                                                                        train={"seed": 1})).model_dump(mode="json"))
    preset = run([sys.executable, "-m", "flows.training", "--params", str(other)], repo, env, check=True)
    said = "run params differ from"
    assert f"DVC          {said}" in preset.stdout and "dvc.lock not updated" in preset.stdout
    assert "`dvc status` shows the workspace changed until a run of params.yaml's params" in preset.stderr
    report = prefect_server.post("/artifacts/filter", {"artifacts": {"key": {"any_": ["training-report"]}},
                                                       "sort": "CREATED_DESC", "limit": 1})[0]
    assert f"Not recorded: {said}" in report["data"]
    # Two workspace runs, one outputs limit: the second found it, so the server logged no
    # failed insert (each run left a 40-line IntegrityError traceback there before).
    assert "concurrency_limit_v2.name" not in (prefect_server.home / "server.log").read_text()


def test_dvc_hashes_exactly_the_files_the_code_digest_hashes(repo):
    """The retrain's code digest and `dvc repro` must agree on "the code that decides the model changed"."""
    from mnistflow.code import MODEL_DVC_STAGES, code_digest, code_files

    before = code_digest(repo)
    cache = repo / "mnistflow/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "junk.cpython-311.pyc").write_bytes(b"\0")  # what any Python run may leave
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    assert code_digest(repo) == before
    # Every code file DVC records for the model stages (a folder dep as its files), with
    # the md5 DVC recorded, is a file the code digest hashes, and nothing else is.
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    recorded = set()
    for stage in MODEL_DVC_STAGES:
        for dep in stages[stage]["deps"]:
            path = Path(dep["path"])
            if path.parts[0] in ("data", "outputs"):
                continue
            files = [path] if (repo / path).is_file() else [
                p.relative_to(repo) for p in (repo / path).rglob("*.py") if "__pycache__" not in p.parts]
            if (repo / path).is_file():
                assert hashlib.md5((repo / path).read_bytes()).hexdigest() == dep["md5"], path
            recorded |= set(files)
    assert recorded == set(code_files(repo))


def _append(repo: Path, rel: str, text: str = "\n# an edit that changes nothing\n") -> None:
    (repo / rel).write_text((repo / rel).read_text() + text)


def changed_stages(repo: Path) -> set[str]:
    status = json.loads(dvc(repo, "status", "--json").stdout)
    return set(status)


def test_edits_outside_the_pipeline_leave_dvc_clean_and_the_retrain_skipping(repo, prefect_server):
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    retrain = [sys.executable, "-m", "flows.retrain"]
    assert "\npromoted: no champion yet" in "\n" + run(retrain, repo, env, check=True).stdout
    # The service, its inbox, pictures and labels, the registry, and every stage's harness:
    # the checks before a step, the exit, the private-API switches, the mirror list and
    # the network (issue 35).
    for rel in ("serving/page.html", "serving/service.py", "serving/inbox.py", "pictures/imaging.py",
                "pictures/labels.py", "lifecycle/registry.py", "lifecycle/registry_paths.py", "lifecycle/report.py",
                "harness/real_parts.py", "tests/helpers.py", "flows/pipeline.py", "tasks/train.py", "bench/speed.py",
                "mnistflow/preflight.py", "mnistflow/entry.py", "mnistflow/private_api.py", "mnistflow/mirrors.py",
                "mnistflow/fetch.py", "mnistflow/dvc_stages/command.py"):
        _append(repo, rel)
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."
    again = run(retrain, repo, env, check=True).stdout
    assert "\nnot promoted: data, params and code unchanged since the champion was trained" in "\n" + again


def test_an_edit_to_plotting_reruns_plot_alone(repo):
    _append(repo, "mnistflow/plots.py")
    _append(repo, "mnistflow/dvc_stages/plot.py")  # the plot DVC stage's own module: no other stage's code
    assert changed_stages(repo) == {"plot"}
    assert ran(dvc(repo, "repro")) == ["plot"]


def test_an_edit_to_training_reruns_train_and_everything_downstream(repo):
    model = (repo / "outputs/model.pt").read_bytes()
    train = repo / "mnistflow/train.py"
    source = train.read_text()
    assert source.count('    if schedule == "constant":\n        return peak\n') == 1
    train.write_text(source.replace('    if schedule == "constant":\n        return peak\n',
                                    '    if schedule == "constant":\n        return peak / 2\n'))
    assert changed_stages(repo) == {"train"}  # evaluate measures with scoring.py, not train.py
    assert ran(dvc(repo, "repro")) == ["train", "export", "evaluate", "plot", "card"]
    assert (repo / "outputs/model.pt").read_bytes() != model


def test_a_flow_waits_for_a_running_dvc_repro_then_both_finish_clean(repo, prefect_server):
    # Slow enough (tiny batches, wide layers) for the flow to start while DVC trains.
    edit_params(repo, lambda p: (p["model"].update(hidden=[1024, 1024]), p["train"].update(
        batch_size=4, stages=[{"epochs": 12, "lr": 0.05}, {"epochs": 3, "lr": 0.01}])))
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    repro = subprocess.Popen([str(Path(sys.executable).with_name("dvc")), "repro"], cwd=repo, env=env_for(repo),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in repro.stdout:  # wait until `dvc repro` is inside training, holding its lock
        if "stage 1/2 epoch 1/12" in line:
            break
    flow = run([sys.executable, "-m", "flows.training"], repo, env)
    out, _ = repro.communicate(timeout=300)
    assert repro.returncode == 0, out
    assert flow.returncode == 0, flow.stderr
    assert "waiting for another DVC process" in flow.stderr, out + flow.stderr
    assert "Traceback" not in flow.stderr
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_a_flow_refuses_in_one_line_when_dvc_holds_the_workspace_too_long(repo, prefect_server):
    from dvc.repo import Repo

    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"], "MNISTFLOW_DVC_LOCK_WAIT": "1"}
    before = {p: p.read_bytes() for p in (repo / "outputs").rglob("*") if p.is_file()}
    with Repo(str(repo)) as other, other.lock:  # DVC's own repository lock, as `dvc repro` holds it
        flow = run([sys.executable, "-m", "flows.training"], repo, env)
    assert flow.returncode == 2
    last = flow.stderr.strip().splitlines()[-1]
    assert last.startswith("mnistflow: error: ") and "holds the repository lock" in last
    assert "Traceback" not in flow.stderr
    assert {p: p.read_bytes() for p in (repo / "outputs").rglob("*") if p.is_file()} == before
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_a_params_yaml_without_what_dvc_yaml_reads_is_refused_before_anything_runs(repo, prefect_server):
    """params.yaml may leave keys to their defaults, but DVC reads ``${data.dataset}`` from the file
    itself: such a run trained to the end, then failed at `dvc commit` (issue 35)."""
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    edit_params(repo, lambda p: p["data"].pop("dataset"))
    before = {p: p.read_bytes() for p in (repo / "outputs").rglob("*") if p.is_file()}
    flow = run([sys.executable, "-m", "flows.training"], repo, env)
    assert flow.returncode == 2 and "Traceback" not in flow.stderr
    errors = [line for line in flow.stderr.splitlines() if line.startswith("mnistflow: error: ")]
    assert len(errors) == 1 and "data.dataset is not set, and dvc.yaml reads it" in errors[0], flow.stderr
    assert {p: p.read_bytes() for p in (repo / "outputs").rglob("*") if p.is_file()} == before


def test_dvc_repro_during_a_workspace_run_stops_with_dvcs_own_message(repo):
    """What a workspace run holds (lifecycle.workspace) is DVC's own path lock: `dvc repro` obeys it."""
    from lifecycle.workspace import dvc_lock

    edit_params(repo, lambda p: p["train"].update(seed=3))
    with dvc_lock(repo, [repo / "outputs", repo / "data/custom"]):
        blocked = dvc(repo, "repro", check=False)
    assert blocked.returncode != 0 and "is busy, it is being blocked by" in blocked.stderr + blocked.stdout
    assert ran(dvc(repo, "repro")) == ["train", "export", "evaluate", "plot", "card"]  # released: it runs


def test_an_increment_reruns_split_and_training_and_travels_with_push_and_pull(repo, tmp_path, prefect_server):
    from mnistflow.idx import encode_idx
    from tests.helpers import make_arrays

    arrays = make_arrays(n_train=100, n_test=1, seed=99)
    (tmp_path / "new").mkdir()
    (tmp_path / "new/late-images-idx3-ubyte").write_bytes(encode_idx(arrays["train-images"]))
    (tmp_path / "new/late-labels-idx1-ubyte").write_bytes(encode_idx(arrays["train-labels"]))
    intake = run([sys.executable, "-m", "flows.intake", str(tmp_path / "new/late-images-idx3-ubyte")], repo,
                 {**prefect_server.env, "PATH": env_for(repo)["PATH"]}, check=True)
    assert "100 accepted, 0 refused" in intake.stdout
    status = dvc(repo, "status").stdout
    assert "data/custom" in status and "modified" in status
    again = dvc(repo, "repro")
    assert ran(again) == list(PIPELINE_STAGES)  # the dataset changed: everything that reads it
    split = json.loads((repo / "outputs/split.json").read_text())
    assert split["increments"][0]["train_size"] + split["increments"][0]["val_size"] == 100
    assert "recent" in json.loads((repo / "outputs/metrics.json").read_text())
    assert ran(dvc(repo, "repro")) == []
    dvc(repo, "push")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "an increment")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    dvc(clone, "pull")
    pulled = list((custom_dir(clone / "data") / "increments").iterdir())
    assert [p.name for p in pulled] == [p.name for p in (custom_dir(repo / "data") / "increments").iterdir()]
    assert (pulled[0] / "manifest.json").read_bytes() == next((custom_dir(repo / "data") / "increments").iterdir()).joinpath(
        "manifest.json").read_bytes()


def test_a_retraction_is_a_new_data_version_that_dvc_sees_and_carries(repo, tmp_path, prefect_server):
    from mnistflow.idx import encode_idx
    from tests.helpers import make_arrays

    arrays = make_arrays(n_train=100, n_test=1, seed=98)
    (tmp_path / "new").mkdir()
    (tmp_path / "new/late-images-idx3-ubyte").write_bytes(encode_idx(arrays["train-images"]))
    (tmp_path / "new/late-labels-idx1-ubyte").write_bytes(encode_idx(arrays["train-labels"]))
    env = {**prefect_server.env, "PATH": env_for(repo)["PATH"]}
    run([sys.executable, "-m", "flows.intake", str(tmp_path / "new/late-images-idx3-ubyte")], repo, env, check=True)
    dvc(repo, "repro")
    (increment,) = (custom_dir(repo / "data") / "increments").iterdir()
    retract = run([sys.executable, "-m", "flows.intake", "--retract", increment.name, "--reason", "a bad batch"],
                  repo, env, check=True)
    assert f"retracted 100 item(s) ({increment.name})" in retract.stdout
    status = dvc(repo, "status").stdout
    assert "data/custom" in status and "modified" in status  # a new data version
    assert not list((custom_dir(repo / "data") / "increments").iterdir())
    aside = repo / "data" / "retracted" / "custom" / increment.name
    assert json.loads((aside / "retraction.json").read_text())["reason"] == "a bad batch"  # kept, not deleted
    assert (aside / "images-idx3-ubyte").exists()
    dvc(repo, "repro")
    assert "recent" not in json.loads((repo / "outputs/metrics.json").read_text())
    dvc(repo, "push")
    git(repo, "add", "-A")
    # The data is the base's again, so dvc.lock is the committed one, byte for byte.
    assert git(repo, "status", "--porcelain") == ""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    dvc(clone, "pull")
    assert not (custom_dir(clone / "data") / "increments").exists() or \
        not list((custom_dir(clone / "data") / "increments").iterdir())
