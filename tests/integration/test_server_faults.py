"""A Prefect API that is not there, dies mid-run, or cannot start (issue 24, class 5), with real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from harness.real_parts import PrefectServer, clean_env, free_port, run
from mnistflow.checkpoints import load_checkpoint
from tests.helpers import FLOW, one_line_error, tiny_params, write_params


def test_a_dead_prefect_api_url_is_one_line_before_anything_is_written(workdir, dataset):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    url = f"http://127.0.0.1:{free_port()}/api"
    started = time.monotonic()
    line = one_line_error(run(FLOW, workdir, clean_env(PREFECT_API_URL=url)))
    assert line.startswith(f"mnistflow: error: PREFECT_API_URL {url}: no Prefect API answers there (")
    assert time.monotonic() - started < 60
    assert sorted(p.name for p in workdir.iterdir()) == ["params.yaml"]


def _epochs_done(last: Path) -> int:
    try:
        return int(load_checkpoint(last)["completed_epochs"])
    except Exception:  # noqa: BLE001  not there yet, or being replaced
        return 0


def _kill_server_mid_run(workdir: Path, tmp_path: Path, then_sigterm: bool) -> tuple[subprocess.Popen, str, float]:
    """A flow run against a real server, killed (SIGKILL, its whole session) after the
    first epoch's checkpoint; with ``then_sigterm`` the run gets SIGTERM a second later.
    Returns the run, its stderr, and the seconds from the kill (or the SIGTERM) to its end."""
    from tests.helpers import write_dataset

    # Epochs long enough to kill the server inside one: 3,000 images of 28x28, a wide layer.
    mirror = tmp_path / "big-mirror"
    write_params(workdir / "params.yaml", tiny_params(mirror, write_dataset(mirror, n_train=3000, n_test=200),
                                                      model={"hidden": [256]},
                                                      train={"batch_size": 20, "stages": [{"epochs": 40, "lr": 0.1}]}))
    (tmp_path / "home").mkdir()
    server = PrefectServer(tmp_path / "home").start()
    proc = subprocess.Popen([*FLOW, "--run-dir", "run"], cwd=workdir, env=server.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _epochs_done(workdir / "run/checkpoints/last.pt") < 1 and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(server.proc.pid, signal.SIGKILL)  # during epoch 2
        if then_sigterm:
            time.sleep(1)
            proc.send_signal(signal.SIGTERM)
        since = time.monotonic()
        _, stderr = proc.communicate(timeout=240)
        return proc, stderr, time.monotonic() - since
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        server.stop()


def test_the_server_killed_during_epoch_two_ends_the_run_fast_and_a_rerun_resumes(workdir, dataset, tmp_path):
    proc, stderr, took = _kill_server_mid_run(workdir, tmp_path, then_sigterm=False)
    assert "Traceback" not in stderr, stderr[-3000:]
    if proc.returncode == 0:  # it finished without the API: its model and metrics are there
        assert (workdir / "run/model.pt").exists() and (workdir / "run/metrics.json").exists()
    else:
        assert proc.returncode == 2
        assert stderr.strip().splitlines()[-1].startswith("mnistflow: error: the Prefect API at ")
        assert "stopped answering mid-run" in stderr and "rerun to resume" in stderr
    assert took < 120, f"{took:.0f}s after the server died"  # measured: 40 s, every file written
    done = _epochs_done(workdir / "run/checkpoints/last.pt")
    assert done >= 2  # the epoch that was running when the server died was finished and kept

    with PrefectServer(tmp_path / "home") as again:  # the same database, started again
        result = run([*FLOW, "--run-dir", "run"], workdir, again.env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming stage 1 at epoch {done + 1} of 40" in result.stderr + result.stdout or done == 40


def test_sigterm_is_obeyed_within_seconds_when_the_server_is_gone(workdir, dataset, tmp_path):
    proc, stderr, took = _kill_server_mid_run(workdir, tmp_path, then_sigterm=True)
    assert took < 30, f"SIGTERM took {took:.0f}s"  # measured: 10 s (2 min 44 s before)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr[-3000:]
    assert "stopped answering mid-run, and the run terminated (SIGTERM)" in stderr.strip().splitlines()[-1]


def test_a_damaged_database_is_named_with_advice_that_fits(workdir, dataset, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"this is not a database" * 100)
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    env = {k: v for k, v in clean_env(PREFECT_HOME=str(home)).items() if k != "PREFECT_API_URL"}
    env["PREFECT_SERVER_API_PORT"] = str(free_port())
    line = one_line_error(run(FLOW, workdir, env, timeout=300))
    assert "cannot start a local Prefect server" in line
    assert "database in PREFECT_HOME" in line and "prefect.db aside" in line, line
    assert "PREFECT_SERVER_API_PORT" not in line
