"""Real parts for the tests and the benchmarks: a Prefect server on 127.0.0.1, a
copy of the repository as a fresh git repo, and `git`/`dvc` run in it.

No mocks: each helper starts or runs the real program. Nothing here imports
Prefect or DVC; they are run as the user runs them, as commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MNISTFLOW_MIRROR"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
        check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float, name: str, output: Callable[[], str]) -> None:
    """Until ``url`` answers 200; a process that exits or never answers is an error quoting its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}: {output()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not become healthy in {timeout:.0f}s")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 300, every: float = 0.2,
             tolerate: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``condition`` until it returns something true (returned) or ``timeout`` passes
    (an AssertionError naming ``what``); exceptions of ``tolerate`` count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except tolerate:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(every)


def stop_group(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM the process's whole session, then SIGKILL what is left after ``grace`` seconds."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop_tree(proc: subprocess.Popen | None, grace: float = 10) -> None:
    """Stop ``proc``, its session and every process under it, however they were started
    (a worker's flow-run processes, which outlive a worker killed alone)."""
    import psutil

    if proc is None:
        return
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# Every process a test session starts carries this in its environment (tests/conftest.py
# sets it), so that what is still running at the end can be found, orphans included.
SESSION_ENV = "MNISTFLOW_TEST_SESSION"


def session_leftovers(marker: str, spare: set[int]) -> list[str]:
    """Processes still running with ``SESSION_ENV=marker``, but those in ``spare``; each as
    "pid: command"."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.info["pid"] in spare:
            continue
        try:
            if p.environ().get(SESSION_ENV) == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{p.info['pid']}: {' '.join(p.info['cmdline'] or [])[:160]}")
        except psutil.Error:
            continue
    return found


class PrefectServer:
    """A real Prefect server on 127.0.0.1: SQLite in a temporary PREFECT_HOME, or the
    PostgreSQL database at ``database_url`` (``postgresql+asyncpg://...``)."""

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        database = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
        self.env = clean_env(
            PREFECT_HOME=str(home), PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="INFO", **database,
        )
        self.log = open(home / "server.log", "a")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "PrefectServer":
        prefect = Path(sys.executable).with_name("prefect")
        self.proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(self.proc, f"{self.api_url}/health", timeout, "prefect server",
                     lambda: (self.home / "server.log").read_text())
        return self

    def post(self, path: str, body: dict | None = None):
        req = urllib.request.Request(f"{self.api_url}{path}", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.api_url}{path}", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        stop_group(self.proc, grace=30)
        self.log.close()

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self) -> "PrefectServer":
        """Stop and start again on the same port and database (a server upgrade, a crash)."""
        self.stop()
        self.log = open(self.home / "server.log", "a")
        return self.start()


class Service:
    """``python -m serving.service`` as a real uvicorn process on a free port of 127.0.0.1."""

    def __init__(self, model: Path | None, cwd: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        """``model`` None: the service's own choice (the champion, or wait for one)."""
        self.model, self.cwd, self.env = model and Path(model), Path(cwd), env or clean_env()
        self.args = (*(("--model", str(self.model)) if self.model else ()), *args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Service":
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving.service", *self.args, "--port", str(self.port)],
            cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(self.proc, f"{self.url}/health", timeout, "serving.service", self.output)
        except RuntimeError:
            self.stop()
            raise
        return self

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        stop_group(self.proc, grace=15)

    def __enter__(self) -> "Service":
        # `with Service(...).start()` once started a second process and lost the first
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster: ``initdb`` in a temporary folder, run as the
    ``postgres`` user when this process is root (PostgreSQL refuses to run as root),
    listening on a free port on 127.0.0.1 only, with trust authentication (no
    one else can reach it), stopped by ``stop``."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or _postgres_bin_dir()
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="mnistflow-pg-"))
        self.data, self.socket_dir = self.dir / "data", self.dir / "socket"
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.socket_dir, "postgres")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done

    def start(self) -> "PostgresCluster":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir}", "start")
        return self

    def create_database(self, name: str) -> str:
        """A new database; returns the SQLAlchemy URL Prefect's server takes."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (no initdb): `apt-get install postgresql`")
    return versions[-1].parent


# Real git and dvc in a temporary copy of the repository (tests and bench/).
def env_for(repo: Path, **extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **extra)


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).with_name("dvc")), *args], repo, env_for(repo), check=check)


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo, env_for(repo), check=True).stdout


def copy_repo(dest: Path) -> Path:
    """The working tree as git sees it (tracked and untracked, not ignored), as a fresh repo."""
    files = run(["git", "ls-files", "-co", "--exclude-standard"], REPO, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "test@example.invalid")
    git(dest, "config", "user.name", "test")
    return dest
