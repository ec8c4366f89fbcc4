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
