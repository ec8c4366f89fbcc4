"""The DVC remote on an S3 API: moto's server on 127.0.0.1 (the fixture dvc-s3
tests itself with), configured exactly as docs/operations.md tells users."""

from __future__ import annotations

import os
import shutil
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
    dvc,
    env_for,
    free_port,
    git,
    run,
    tiny_params,
    write_dataset,
    write_params,
)

pytestmark = pytest.mark.slow
BUCKET = "mnistflow"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mnistflow-test", "AWS_SECRET_ACCESS_KEY": "mnistflow-test",
               "AWS_DEFAULT_REGION": "us-east-1",
               # A remote that is gone is said at once: botocore's retries (5 by default, with
               # backoff, per file) held the stopped-server test for four minutes.
               "AWS_MAX_ATTEMPTS": "1"}


class S3:
    """moto's S3 server in this process; its buckets outlive a stop and a start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> "S3":
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def keys(self) -> set[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture
def s3():
    server = S3().start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def env(**extra: str) -> dict[str, str]:
    return {**env_for(Path.cwd()), **CREDENTIALS, **extra}


def s3_dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).with_name("dvc")), *args], repo, env(), check=check)


def add_s3_remote(repo: Path, s3: S3) -> None:
    """docs/operations.md, "DVC on S3", word for word (credentials come from the environment)."""
    dvc(repo, "remote", "add", "-d", "storage", f"s3://{BUCKET}/dvcstore")
    dvc(repo, "remote", "modify", "storage", "endpointurl", s3.url)
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-qm", "the S3 remote")


def reproduced_repo(tmp_path: Path, s3: S3) -> Path:
    checksums = write_dataset(tmp_path / "mirror")
    repo = copy_repo(tmp_path / "repo")
    write_params(repo / "params.yaml", validate(tiny_params(tmp_path / "mirror", checksums)).model_dump(mode="json"))
    add_s3_remote(repo, s3)
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a run")
    return repo


def tracked_files(repo: Path) -> dict[str, bytes]:
    """What DVC versions: everything under data/, outputs/ and bulk/ but the two records of
    this machine's own that are never versioned: data/.stamps/ (when each file last
    verified) and outputs/training.json (how long training took here)."""
    return {str(p.relative_to(repo)): p.read_bytes()
            for folder in ("data", "outputs", "bulk") for p in sorted((repo / folder).rglob("*"))
            if p.is_file() and ".stamps" not in p.relative_to(repo).parts and p.name != "training.json"}


def fresh_clone(repo: Path, dest: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(dest))
    return dest


def test_push_then_pull_in_a_fresh_clone_is_byte_identical_with_nothing_to_rerun(tmp_path, s3):
    repo = reproduced_repo(tmp_path, s3)
    pushed = s3_dvc(repo, "push")
    assert "pushed" in pushed.stdout
    assert any(key.startswith("dvcstore/files/md5/") for key in s3.keys())

    clone = fresh_clone(repo, tmp_path / "clone")
    s3_dvc(clone, "pull")
    assert tracked_files(clone) == tracked_files(repo)
    assert "Data and pipelines are up to date" in s3_dvc(clone, "status").stdout
    assert s3_dvc(clone, "repro").stdout.count("didn't change, skipping") == len(PIPELINE_STAGES)


def test_the_retraining_flow_pushes_to_the_s3_remote(tmp_path, s3, prefect_server):
    repo = reproduced_repo(tmp_path, s3)
    result = run([sys.executable, "-m", "flows.retrain"], repo, {**prefect_server.env, **env()}, check=True)
    assert "promoted" in result.stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    model_md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "outputs/model.pt")
    assert f"dvcstore/files/md5/{model_md5[:2]}/{model_md5[2:]}" in s3.keys()
    assert "Cache and remote 'storage' are in sync." in s3_dvc(repo, "status", "--cloud").stdout


def test_a_sweeps_best_trial_pushed_comes_back_in_another_clone(tmp_path, s3, prefect_server):
    repo = reproduced_repo(tmp_path, s3)
    (repo / "sweep.yaml").write_text(yaml.safe_dump(
        {"name": "s3", "grid": {"train.stages.0.lr": [0.5, 0.1]}, "workers": 2}))
    sweep_env = {**prefect_server.env, **env()}
    run([sys.executable, "-m", "flows.sweep", "sweep.yaml", "--apply-best"], repo, sweep_env, check=True)
    best = (repo / "runs/s3/leaderboard.csv").read_text().splitlines()[1].split(",")[0]  # ranked first
    dvc(repo, "repro")
    git(repo, "add", "params.yaml", "dvc.lock")
    git(repo, "commit", "-qm", "the sweep's winner")
    s3_dvc(repo, "push")

    clone = fresh_clone(repo, tmp_path / "clone")
    s3_dvc(clone, "pull")
    trial_model = (repo / "runs/s3" / best / "model.pt").read_bytes()
    assert (clone / "outputs/model.pt").read_bytes() == trial_model


def test_a_server_stopped_mid_push_is_a_clear_error_and_the_next_push_loses_nothing(tmp_path, s3):
    repo = reproduced_repo(tmp_path, s3)
    # Enough bytes that the push is still going when the server goes away: 48 files of 4 MiB.
    bulk = repo / "bulk"
    bulk.mkdir()
    for i in range(48):
        (bulk / f"part-{i:02d}.bin").write_bytes(os.urandom(4 * 2**20))
    dvc(repo, "add", "bulk")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bulk data")

    push = subprocess.Popen([str(Path(sys.executable).with_name("dvc")), "push", "-j", "2"], cwd=repo, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while len(s3.keys()) < 3:
        assert push.poll() is None and time.monotonic() < deadline, "the push ended before it could be interrupted"
        time.sleep(0.05)
    s3.stop()
    output = push.communicate(timeout=300)[0]
    assert push.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    # DVC's own lines (one per failed transfer, then its summary), each naming the endpoint it lost; no traceback.
    assert errors and all(f"Could not connect to the endpoint URL: \"{s3.url}/" in e for e in errors), output
    assert "Traceback" not in output

    s3.start()  # the same port; what was stored before the stop is still there
    again = s3_dvc(repo, "push")
    assert "pushed" in again.stdout
    clone = fresh_clone(repo, tmp_path / "clone")
    s3_dvc(clone, "pull")
    assert tracked_files(clone) == tracked_files(repo)
    shutil.rmtree(bulk)
