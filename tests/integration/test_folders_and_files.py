"""Run folders that are not run folders, model files that are not checkpoints, and how a run ends
(issue 24, classes 3, 4 and 8), through the real command lines.

Here: the cases that start processes or servers; the others are in tests/unit/test_folders_and_files.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from mnistflow.checkpoints import load_checkpoint, save_checkpoint
from tests.helpers import FLOW, clean_env, custom_dir, one_line_error, run, stage, tiny_params, write_params


@pytest.mark.parametrize("run_dir, says", [
    ("registry/champion", "is inside {workdir}/registry, the registry, whose only writer is promotion"),
    ("registry", "is inside {workdir}/registry, the registry"),
    ("data/mnist", "is inside {workdir}/data, the data root, which holds verified datasets"),
    (".", "holds {workdir}/registry, the registry"),
    ("/", "/ is the filesystem root; give the run a folder of its own"),
    ("elsewhere", "elsewhere holds 1 other file(s) (notes.txt) and no run"),
    ("loop/run", "loop/run: cannot be resolved"),
])
def test_a_folder_that_is_no_run_folder_is_refused_before_anything_is_written(workdir, dataset, champion,
                                                                              run_dir, says):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    (workdir / "elsewhere").mkdir()
    (workdir / "elsewhere/notes.txt").write_text("mine")
    (workdir / "loop").symlink_to("loop")
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*") if p.name != "loop")
    for command in ([*FLOW, "--run-dir", run_dir], [sys.executable, "-m", "mnistflow.dvc_stages.train",
                                                    "--run-dir", run_dir]):
        line = one_line_error(run(command, workdir, clean_env()))
        assert f"--run-dir: {run_dir}" in line and says.format(workdir=workdir) in line, line
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*") if p.name != "loop") == before
    assert champion.read_bytes() == b"the champion's bytes"


@pytest.fixture
def read_only_data(tmp_path):
    """A real read-only mount (a bind mount remounted ro), as a shared dataset volume is."""
    source, mount = tmp_path / "data-source", tmp_path / "data-ro"
    source.mkdir()
    mount.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("a read-only bind mount is how this test shares data for real, and it failed: " + done.stderr)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
    yield source, mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_read_only_data_root_is_used_in_place_when_it_holds_the_data(workdir, dataset, read_only_data):
    source, mount = read_only_data
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    line = one_line_error(stage(workdir, "download", args=["--data-root", str(mount)]))
    assert f"{mount} is on a read-only filesystem" in line  # EROFS, not "permission denied"
    stage(workdir, "download", args=["--data-root", str(source)], check=True)  # the data put there once
    for name in ("download", "split", "train"):
        stage(workdir, name, args=["--data-root", str(mount)], check=True)
    assert (workdir / "outputs/model.pt").exists()


@pytest.mark.parametrize("junk", [b"just some text\n", b"PK\x03\x04 and then nothing", b""])
def test_any_bytes_that_are_not_a_checkpoint_are_one_line(workdir, dataset, junk):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    for name in ("download", "split"):
        stage(workdir, name, check=True)
    last = workdir / "outputs/checkpoints/last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(junk)
    line = one_line_error(stage(workdir, "train"))
    assert "last.pt: corrupt or not a checkpoint" in line and line.endswith("delete it to train from scratch")
    (workdir / "outputs/model.pt").write_bytes(junk)
    line = one_line_error(run([sys.executable, "-m", "serving.predict", "--model", "outputs/model.pt",
                               "params.yaml"], workdir, clean_env()))
    assert "outputs/model.pt: corrupt or not a checkpoint" in line


def test_weights_that_do_not_fit_the_network_are_one_line(workdir, dataset):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    for name in ("download", "split", "train"):
        stage(workdir, name, check=True)
    last = workdir / "outputs/checkpoints/last.pt"
    state = load_checkpoint(last)
    state["model"] = {k: torch.zeros(3, 3) for k in state["model"]}  # the same digests, the wrong shapes
    save_checkpoint(last, **{k: v for k, v in state.items() if k != "format"})
    line = one_line_error(stage(workdir, "train"))
    assert "last.pt: its weights do not fit the network these params build" in line


def test_sigterm_stops_a_run_as_ctrl_c_does(workdir, dataset):
    write_params(workdir / "params.yaml", tiny_params(*dataset, train={"stages": [{"epochs": 500, "lr": 0.1}]}))
    for name in ("download", "split"):
        stage(workdir, name, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "mnistflow.dvc_stages.train"], cwd=workdir, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = workdir / "outputs/checkpoints/last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)  # 500 epochs would take far longer: it stopped
    assert proc.returncode == 143 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == ("mnistflow: terminated (SIGTERM); run again to resume from the "
                                               "last checkpoint")
    assert load_checkpoint(last)["completed_epochs"] >= 1
    assert custom_dir(workdir / "data").exists()
