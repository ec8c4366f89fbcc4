"""Which Prefect API a run from the command line talks to.

PREFECT_API_URL, when the user set one (a shared server, Prefect Cloud). When
none is set, a local server that outlives the run, started once and reused by
every later run. That saves the ~14 s Prefect's temporary per-run server takes
to start on a small machine, and keeps every run's history in the UI, which a
temporary server loses when the run ends.

Only the server a run of this project started is reused: its pid, port and
PREFECT_HOME are recorded (PREFECT_HOME/mnistflow-server.json). Any other
Prefect server answering on the port (another user's on a shared machine, with
its own work pools, workers and limits) is left alone: the run starts its own
on a free port and says so, and PREFECT_API_URL is what to set to use that one.
``python -m flows.server`` starts or finds the server and prints the
``export PREFECT_API_URL=...`` line for other terminals.

It is ``prefect server start``, detached, exactly as ``--background`` would
run it but for one thing: its output goes to PREFECT_HOME/server.log.
``--background`` pipes the server's output to the short-lived command that
started it, and the server's first log line after that command exits kills it
(measured here: the telemetry error of an offline machine, seconds after
start). The pid goes where ``--background`` puts it (PREFECT_HOME/server.pid),
so Prefect's own ``prefect server stop`` stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mnistflow.errors import MnistflowError

START_TIMEOUT = 90.0


def unreachable(api_url: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at ``api_url``, or None when something does (any HTTP answer,
    even a 401 of Prefect Cloud without a key, is a server that is there)."""
    import urllib.error

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (OSError, ValueError) as exc:  # a timeout, a URL that is not one
        return str(exc) or type(exc).__name__


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


# What this project's local server is: its pid, port and PREFECT_HOME, so that a
# later run reuses that server and no other that happens to answer on the port.
STATE = "mnistflow-server.json"


def _ours(home: Path, host: str, port: int) -> str | None:
    """The URL of the local server a run of this project started in ``home``, when that
    server still runs and answers; else None. (A server started before the record
    existed is known by the pid in ``server.pid`` serving the configured port.)"""
    import psutil

    try:
        state = json.loads((home / STATE).read_text())
    except (OSError, ValueError):
        try:
            state = {"pid": int((home / "server.pid").read_text()), "port": port, "home": str(home),
                     "url": f"http://{host}:{port}/api"}
        except (OSError, ValueError):
            return None
    try:
        command = psutil.Process(int(state["pid"])).cmdline()
    except (KeyError, TypeError, ValueError, psutil.Error):
        return None
    url = state.get("url", "")
    if state.get("home") != str(home) or "server" not in command or str(state.get("port")) not in command:
        return None
    return url if healthy(url) else None


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def local_server() -> tuple[str, bool, str]:
    """The local background server's API URL, started if this project's is not running;
    returns (url, whether this call started it, why another port than the configured one)."""
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_API_HOST, PREFECT_SERVER_API_PORT

    home = Path(PREFECT_HOME.value())
    host = PREFECT_SERVER_API_HOST.value()
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    port, moved = PREFECT_SERVER_API_PORT.value(), ""
    found = _ours(home, host, port)
    if found:
        return found, False, ""
    if healthy(f"http://{host}:{port}/api"):
        # Someone's server, not this project's (another user's, another PREFECT_HOME's):
        # its work pools, workers and limits are not ours to use.
        moved = (f"port {port} answers with a Prefect server this project did not start "
                 f"(set PREFECT_API_URL=http://{host}:{port}/api to use that one)")
        port = _free_port(host)
    url = f"http://{host}:{port}/api"
    pid_file, log_file = home / "server.pid", home / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    try:
        home.mkdir(parents=True, exist_ok=True)
        _forget_dead_server(pid_file)
        with open(log_file, "ab") as log:
            start = log.tell()  # what this start says is what follows
            # Its own session: a Ctrl-C meant for this run must not stop the server.
            server = subprocess.Popen([*_prefect_command(), "server", "start", "--host", host, "--port", str(port)],
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
    except OSError as exc:
        raise MnistflowError(f"PREFECT_HOME {home}: cannot start a local Prefect server there "
                             f"({exc.strerror or exc}); free space there, or set PREFECT_HOME to another folder") from None
    deadline = time.monotonic() + START_TIMEOUT
    while not healthy(url):
        if server.poll() is not None:
            raise MnistflowError(start_failure(log_file, start, home, port, server.returncode))
        if time.monotonic() > deadline:
            server.terminate()
            raise MnistflowError(f"the local Prefect server did not answer at {url} within "
                                 f"{START_TIMEOUT:.0f}s; see {log_file}")
        time.sleep(0.25)
    pid_file.write_text(str(server.pid))  # where `prefect server stop` looks
    (home / STATE).write_text(json.dumps({"pid": server.pid, "port": port, "url": url, "home": str(home)}))
    return url, True, moved


# What a failed start's log says, and what to do about it. The log's last line is
# often a shutdown message; the cause is the error line before it.
CAUSES = (
    (("no space left", "disk is full", "database or disk is full"),
     "the disk of PREFECT_HOME {home} is full: free space there, or set PREFECT_HOME to another folder"),
    (("file is not a database", "database disk image is malformed", "malformed"),
     "Prefect's database in PREFECT_HOME {home} is damaged: move {home}/prefect.db aside (a new one is made) "
     "or set PREFECT_HOME to another folder"),
    (("readonly database", "read-only file system", "permission denied"),
     "PREFECT_HOME {home} cannot be written: set PREFECT_HOME to a folder you can write"),
    (("address already in use", "error binding"),
     "port {port} is taken: set PREFECT_SERVER_API_PORT to a free port, or PREFECT_API_URL to a running server"),
)


def start_failure(log_file: Path, start: int, home: Path, port: int, code: int) -> str:
    """One line: the cause a failed server start logged, and the advice that fits it."""
    with open(log_file, "rb") as log:
        log.seek(start)
        lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    cause = (errors or lines or [f"exit {code}"])[-1][:300]
    advice = next((text for needles, text in CAUSES if any(n in " ".join(errors or lines).lower() for n in needles)),
                  "see the log; set PREFECT_API_URL to a running server to use that one instead")
    return f"cannot start a local Prefect server on port {port} ({cause}; {log_file}): {advice.format(home=home, port=port)}"


def main() -> None:
    """``python -m flows.server``: this project's local server, started if need be, and
    the line that points other terminals (a worker, `prefect deploy`) at it."""
    from mnistflow.entry import run_main

    def show() -> None:
        url, started, moved = local_server()
        print(f"{'Started' if started else 'Running'}: {url.removesuffix('/api')}{' (' + moved + ')' if moved else ''}")
        print(f"export PREFECT_API_URL={url}")

    run_main(show)


def api_settings() -> dict:
    """Settings for ``prefect.settings.temporary_settings``: none when PREFECT_API_URL
    is set, else the local background server's URL (starting it, and saying so).
    The URL also goes into the environment, for the processes the run starts
    (Dask workers)."""
    from prefect.settings import PREFECT_API_URL

    given = PREFECT_API_URL.value()
    if given:
        why = unreachable(given)
        if why is not None:  # before anything is written: Prefect would only say "Failed to reach API"
            raise MnistflowError(f"PREFECT_API_URL {given}: no Prefect API answers there ({why}); start that "
                                 "server, correct the URL, or unset PREFECT_API_URL for a local server")
        return {}
    url, started, moved = local_server()
    if started:
        print(f"Started a local Prefect server in the background at {url.removesuffix('/api')} "
              f"(later runs reuse it; `prefect server stop` stops it){'; ' + moved if moved else ''}.", flush=True)
    os.environ["PREFECT_API_URL"] = url
    return {PREFECT_API_URL: url}


if __name__ == "__main__":
    main()
