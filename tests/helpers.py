"""Small MNIST-format datasets, servers and subprocess helpers for the tests."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from mnistflow.datasets import FILE_NAMES
from mnistflow.idx import encode_idx

REPO = Path(__file__).resolve().parent.parent


def make_arrays(n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """A learnable 10-class problem: a fixed random stroke pattern per class plus noise."""
    rng = np.random.default_rng(seed)
    templates = (rng.random((10, 28, 28)) > 0.8) * 200.0

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        images = templates[labels] + rng.normal(0, 40, (n, 28, 28))
        return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return {"train-images": train_x, "train-labels": train_y, "test-images": test_x, "test-labels": test_y}


def write_dataset(directory: Path, **kwargs) -> dict[str, str]:
    """Write the four .gz files; return their uncompressed md5s (the data.checksums param)."""
    directory.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for key, array in make_arrays(**kwargs).items():
        raw = encode_idx(array)
        (directory / FILE_NAMES[key]).write_bytes(gzip.compress(raw, mtime=0))
        checksums[key] = hashlib.md5(raw).hexdigest()
    return checksums


def tiny_params(mirror: str | Path, checksums: dict[str, str], **sections) -> dict:
    params = {
        "data": {"dataset": "custom", "mirrors": [str(mirror)], "checksums": checksums,
                 "val_fraction": 0.2, "seed": 0},
        "model": {"hidden": [16]},
        "train": {"batch_size": 50, "stages": [{"epochs": 2, "lr": 0.5}, {"epochs": 2, "lr": 0.1}]},
        "device": "cpu",
        "plot": {"dpi": 40},
    }
    for name, values in sections.items():
        params[name] = {**params.get(name, {}), **values} if isinstance(values, dict) else values
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


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


def stage(cwd: Path, name: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "mnistflow.stages", name], cwd, env, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MirrorServer:
    """Real HTTP on 127.0.0.1 with three mirrors: /fail/ (HTTP 503), /corrupt/ (a
    truncated gzip) and /good/ (the files as they are). Counts every request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                kind, _, name = self.path.strip("/").partition("/")
                path = server.directory / name
                if kind == "fail" or not path.exists():
                    self.send_error(503 if kind == "fail" else 404)
                    return
                body = path.read_bytes()
                if kind == "corrupt":
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PrefectServer:
    """A real Prefect server (SQLite in a temporary PREFECT_HOME) on 127.0.0.1."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.env = clean_env(
            PREFECT_HOME=str(home), PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
            PREFECT_LOGGING_LEVEL="INFO",
        )
        self.log = open(home / "server.log", "w")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "PrefectServer":
        import urllib.request

        prefect = Path(sys.executable).with_name("prefect")
        self.proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(self.home / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("prefect server did not become healthy")

    def post(self, path: str, body: dict | None = None):
        import json
        import urllib.request

        req = urllib.request.Request(f"{self.api_url}{path}", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def get(self, path: str):
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.api_url}{path}", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


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
