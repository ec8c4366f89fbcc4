"""A repository copy with deployments, on a real Prefect server and a real process
worker, driven through the `prefect` CLI (the deployment, PostgreSQL and loop tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mnistflow.params import validate
from tests.helpers import run, tiny_params

PREFECT = str(Path(sys.executable).with_name("prefect"))


class Project:
    def __init__(self, repo: Path, server, mirror: Path, checksums: dict[str, str]) -> None:
        self.repo, self.server, self.mirror, self.checksums = repo, server, mirror, checksums
        # The worker asks for runs every second, not every 10 (Prefect's default, for a
        # server with many workers): a run here starts at once, and the suite waits less.
        self.env = {**server.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "PREFECT_WORKER_QUERY_SECONDS": "1"}
        self.worker: subprocess.Popen | None = None

    def prefect(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return run([PREFECT, "--no-prompt", *args], self.repo, self.env, check=check, timeout=timeout)

    def start_worker(self) -> None:
        log = open(self.repo.parent / "worker.log", "a")
        self.worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "mnistflow"], cwd=self.repo,
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()

    def params(self, **sections) -> dict:
        return validate(tiny_params(self.mirror, self.checksums, **sections)).model_dump(mode="json")

    def deployment_run(self, name: str, *params: str, check: bool = True) -> subprocess.CompletedProcess:
        args = ["deployment", "run", name, "--watch", "--watch-interval", "1", "--watch-timeout", "500"]
        for p in params:
            args += ["-p", p]
        return self.prefect(*args, check=check)

    def last_run(self, deployment: str) -> dict:
        deps = self.server.post("/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}})
        # the newest run that is not one of the schedule's future runs
        runs = self.server.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [deps[0]["id"]]}},
            "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_DESC", "limit": 1})
        return runs[0]

    def logs(self, flow_run_id: str, expect: str = "", wait: float = 30) -> str:
        """The run's log messages; logs ship in batches, so wait a little for ``expect``."""
        deadline = time.monotonic() + wait
        while True:
            logs = self.server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                                     "sort": "TIMESTAMP_ASC", "limit": 200})
            text = "\n".join(entry["message"] for entry in logs)
            if expect in text or time.monotonic() > deadline:
                return text
            time.sleep(0.5)
