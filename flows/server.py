"""Which Prefect API a run from the command line talks to.

PREFECT_API_URL, when the user set one (a shared server, Prefect Cloud). When
none is set, a local server that outlives the run, started once and reused by
every later run. That saves the ~14 s Prefect's temporary per-run server takes
to start on a small machine, and keeps every run's history in the UI, which a
temporary server loses when the run ends.

It is ``prefect server start``, detached, exactly as ``--background`` would
run it but for one thing: its output goes to PREFECT_HOME/server.log.
``--background`` pipes the server's output to the short-lived command that
started it, and the server's first log line after that command exits kills it
(measured here: the telemetry error of an offline machine, seconds after
start). The pid goes where ``--background`` puts it (PREFECT_HOME/server.pid),
so Prefect's own ``prefect server stop`` stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mnistflow.errors import MnistflowError

START_TIMEOUT = 90.0


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _prefect_command() -> list[str]:
    # The prefect installed beside this interpreter, whatever PATH says.
    beside = Path(sys.executable).with_name("prefect")
    return [str(beside)] if beside.exists() else [shutil.which("prefect") or "prefect"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


def _forget_dead_server(pid_file: Path) -> None:
    """Prefect refuses to start while its pid file exists; a server killed without
    `prefect server stop` (a reboot, SIGKILL) leaves one behind."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return
    except ValueError:
        pid = None
    if pid is None or not _alive(pid):
        pid_file.unlink(missing_ok=True)


def local_server() -> tuple[str, bool]:
    """The local background server's API URL, started if it is not running;
    returns (url, whether this call started it)."""
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_API_HOST, PREFECT_SERVER_API_PORT

    host = PREFECT_SERVER_API_HOST.value()
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    port = PREFECT_SERVER_API_PORT.value()
    url = f"http://{host}:{port}/api"
    if healthy(url):
        return url, False
    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    pid_file, log_file = home / "server.pid", home / "server.log"
    _forget_dead_server(pid_file)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with open(log_file, "ab") as log:
        # Its own session: a Ctrl-C meant for this run must not stop the server.
        server = subprocess.Popen([*_prefect_command(), "server", "start", "--host", host, "--port", str(port)],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(url):
        if server.poll() is not None:
            said = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
            raise MnistflowError(f"cannot start a local Prefect server on port {port} "
                                 f"({said[-1].strip() if said else f'exit {server.returncode}'}; {log_file}); "
                                 "set PREFECT_API_URL to a running one, or PREFECT_SERVER_API_PORT to a free port")
        if time.monotonic() > deadline:
            server.terminate()
            raise MnistflowError(f"the local Prefect server did not answer at {url} within "
                                 f"{START_TIMEOUT:.0f}s; see {log_file}")
        time.sleep(0.25)
    pid_file.write_text(str(server.pid))
    return url, True


def api_settings() -> dict:
    """Settings for ``prefect.settings.temporary_settings``: none when PREFECT_API_URL
    is set, else the local background server's URL (starting it, and saying so).
    The URL also goes into the environment, for the processes the run starts
    (Dask workers)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return {}
    url, started = local_server()
    if started:
        print(f"Started a local Prefect server in the background at {url.removesuffix('/api')} "
              "(later runs reuse it; `prefect server stop` stops it).", flush=True)
    os.environ["PREFECT_API_URL"] = url
    return {PREFECT_API_URL: url}
