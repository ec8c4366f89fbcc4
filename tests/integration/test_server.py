"""With no PREFECT_API_URL set, a run starts a local Prefect server that later runs
reuse and `prefect server stop` stops; a flow-run's history stays on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import clean_env, free_port, run, tiny_params, write_params


def alive(pid: int) -> bool:
    """Running, and not a zombie (the server's parent, the first run, has exited;
    whether anything reaps it depends on the machine's init)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_no_server_set_starts_one_in_the_background_that_later_runs_reuse(tmp_path, dataset):
    home, port = tmp_path / "prefect-home", free_port()
    env = {k: v for k, v in clean_env(PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(port),
                                      PREFECT_SERVER_ANALYTICS_ENABLED="false").items() if k != "PREFECT_API_URL"}
    runs = []
    for name in ("first", "second"):
        work = tmp_path / name
        work.mkdir()
        write_params(work / "params.yaml", tiny_params(*dataset))
        runs.append(run([sys.executable, "-m", "flows.training"], work, env, check=True))
    pid_file = home / "server.pid"
    try:
        assert f"Started a local Prefect server in the background at http://127.0.0.1:{port}" in runs[0].stdout
        assert "Started a local Prefect server" not in runs[1].stdout  # reused
        assert f"run in UI    http://127.0.0.1:{port}/runs/flow-run/" in runs[1].stdout
        assert "Concurrency limits" not in runs[0].stderr + runs[1].stderr  # no warning on a normal run
        for result in runs:  # the progress thread uses the run's own API, not a temporary server of its own
            assert "temporary server" not in result.stdout + result.stderr, result.stdout + result.stderr
            assert "no longer updated" not in result.stdout + result.stderr
        pid = int(pid_file.read_text())
        assert alive(pid)
        # Both runs' history is on the server after their processes ended.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/flow_runs/filter", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            flow_runs = json.loads(response.read())
        assert sorted(r["state"]["type"] for r in flow_runs) == ["COMPLETED", "COMPLETED"]

        stop = subprocess.run([str(Path(sys.executable).with_name("prefect")),
                               "server", "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid) and not pid_file.exists()
    finally:  # never leave a server behind, whatever failed above
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def test_a_prefect_server_this_project_did_not_start_is_left_alone(tmp_path, dataset, prefect_server):
    """Someone else's healthy server on the configured port: the run starts its own on a
    free port, says so and what to set, and the next run reuses its own, never the other."""
    home = tmp_path / "prefect-home"
    foreign = prefect_server.port
    env = {k: v for k, v in clean_env(PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(foreign),
                                      PREFECT_SERVER_ANALYTICS_ENABLED="false").items() if k != "PREFECT_API_URL"}
    before = prefect_server.post("/flow_runs/count", {})
    write_params(tmp_path / "params.yaml", tiny_params(*dataset))
    try:
        first = run([sys.executable, "-m", "flows.training"], tmp_path, env, check=True)
        assert (f"port {foreign} answers with a Prefect server this project did not start "
                f"(set PREFECT_API_URL=http://127.0.0.1:{foreign}/api to use that one)") in first.stdout
        ours = json.loads((home / "mnistflow-server.json").read_text())
        assert ours["port"] != foreign and f"run in UI    http://127.0.0.1:{ours['port']}/" in first.stdout
        second = run([sys.executable, "-m", "flows.training"], tmp_path, env, check=True)
        assert "Started a local Prefect server" not in second.stdout
        assert f"run in UI    http://127.0.0.1:{ours['port']}/" in second.stdout
        assert prefect_server.post("/flow_runs/count", {}) == before  # nothing ran on the other one
        shown = run([sys.executable, "-m", "flows.server"], tmp_path, env, check=True).stdout
        assert f"export PREFECT_API_URL=http://127.0.0.1:{ours['port']}/api" in shown
    finally:
        state = home / "mnistflow-server.json"
        if state.exists():
            try:
                os.killpg(json.loads(state.read_text())["pid"], signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
