"""Real processes: HTTP mirrors on 127.0.0.1, a SIGKILLed training run, bad input at the CLI."""

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mnistflow.datasets import FILE_NAMES
from tests.helpers import PIPELINE_STAGES, MirrorServer, clean_env, custom_dir, run, stage, tiny_params, write_params


def test_download_over_http_falls_through_failing_and_corrupt_mirrors(tmp_path, dataset):
    directory, checksums = dataset
    work = tmp_path / "work"
    work.mkdir()
    with MirrorServer(directory) as server:
        mirrors = [f"{server.url}/fail/", f"{server.url}/corrupt/", f"{server.url}/good/"]
        write_params(work / "params.yaml", tiny_params(directory, checksums, data={"mirrors": mirrors}))
        result = stage(work, "download")
        assert result.returncode == 0, result.stderr
        for name in FILE_NAMES.values():
            stored = custom_dir(work / "data") / name.removesuffix(".gz")
            assert stored.read_bytes() == gzip.decompress((directory / name).read_bytes())
            # the failing mirror is retried with backoff (3 tries), the corrupt one asked once
            assert server.requests.count(f"/fail/{name}") == 3
            assert server.requests.count(f"/corrupt/{name}") == 1
            assert server.requests.count(f"/good/{name}") == 1
        assert "HTTP 503" in result.stderr and "not a complete gzip file" in result.stderr
        assert not list(custom_dir(work / "data").glob(".*"))  # no temporary files left behind

        # Verified files are never fetched again.
        before = len(server.requests)
        assert stage(work, "download").returncode == 0
        assert len(server.requests) == before

        # Only corrupt mirrors: a one-line error naming each, and nothing unverified kept.
        write_params(work / "params.yaml",
                     tiny_params(directory, checksums, data={"mirrors": [f"{server.url}/corrupt/"]}))
        (custom_dir(work / "data") / "train-images-idx3-ubyte").unlink()
        result = stage(work, "download")
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith("mnistflow: error: could not get train-images")
        assert not (custom_dir(work / "data") / "train-images-idx3-ubyte").exists()


def _pipeline(work: Path, through: str = "evaluate") -> None:
    for name in PIPELINE_STAGES:
        stage(work, name, check=True)
        if name == through:
            return


def test_killed_training_resumes_and_matches_an_unbroken_run(tmp_path, dataset):
    directory, checksums = dataset
    params = tiny_params(directory, checksums,
                         train={"stages": [{"epochs": 3, "lr": 0.5}, {"epochs": 3, "lr": 0.1}]})
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    for work in (unbroken, killed):
        work.mkdir()
        write_params(work / "params.yaml", params)
    _pipeline(unbroken)

    stage(killed, "download", check=True)
    stage(killed, "split", check=True)
    proc = subprocess.Popen([sys.executable, "-m", "mnistflow.dvc_stages.train"], cwd=killed,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Kill it (SIGKILL: no chance to clean up) as soon as the 2nd epoch's line appears.
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "stage 1/2 epoch 2/3" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    assert not (killed / "outputs/model.pt").exists()

    resumed = stage(killed, "train", check=True)
    assert "resuming stage 1 at epoch 3 of 3" in resumed.stderr
    assert "stage 1/2 epoch 1/3" not in resumed.stderr
    for name in ("export", "evaluate"):
        stage(killed, name, check=True)
    a = json.loads((unbroken / "outputs/metrics.json").read_text())
    b = json.loads((killed / "outputs/metrics.json").read_text())
    assert a["val"] == b["val"] and a["test"] == b["test"]
    for name in ("model.pt", "history.csv", "model.onnx", "metrics.json"):
        assert (unbroken / "outputs" / name).read_bytes() == (killed / "outputs" / name).read_bytes()


BAD_PARAMS = [
    ({"data": {"dataset": "svhn"}}, "data.dataset"),
    ({"train": {"stages": [{"epochs": 1, "lr": -1}]}}, "train.stages.0.lr"),
    ({"train": {"stages": [{"epochs": 0, "lr": 0.1}]}}, "train.stages.0.epochs"),
    ({"train": {"stages": []}}, "train.stages"),
    ({"model": {"hidden": [0]}}, "model.hidden.0"),
    ({"data": {"val_fraction": 0}}, "data.val_fraction"),
    ({"data": {"val_fraction": 1.0}}, "data.val_fraction"),
]


@pytest.mark.parametrize("entry", ["stages", "flow"])
def test_bad_params_fail_in_one_line_and_write_nothing(tmp_path, dataset, entry):
    directory, checksums = dataset
    for i, (override, field) in enumerate(BAD_PARAMS if entry == "stages" else BAD_PARAMS[:2]):
        work = tmp_path / f"w{i}"
        work.mkdir()
        params = tiny_params(directory, checksums)
        for section, values in override.items():
            params[section] = {**params[section], **values}
        write_params(work / "params.yaml", params)
        args = ([sys.executable, "-m", "mnistflow.dvc_stages.download"] if entry == "stages"
                else [sys.executable, "-m", "flows.training", "--params", str(work / "params.yaml")])
        result = run(args, work if entry == "stages" else Path(__file__).parent.parent)
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert result.stderr.startswith("mnistflow: error: ") and f"{field}:" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert sorted(p.name for p in work.iterdir()) == ["params.yaml"]


def test_bad_files_are_one_line_errors(tmp_path, dataset):
    import gzip

    directory, checksums = dataset
    work = tmp_path / "work"
    work.mkdir()
    write_params(work / "params.yaml", tiny_params(directory, checksums))
    assert run([sys.executable, "-m", "mnistflow.dvc_stages.evaluate"], work).returncode == 2
    _pipeline(work, through="train")
    # wrong magic number, served by the "mirror": rejected, named, nothing replaced
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in FILE_NAMES.values():
        raw = bytearray(gzip.decompress((directory / name).read_bytes()))
        raw[3] = 7
        (bad / name).write_bytes(gzip.compress(bytes(raw)))
    (custom_dir(work / "data") / "t10k-labels-idx1-ubyte").unlink()
    write_params(work / "params.yaml", tiny_params(bad, checksums))
    result = stage(work, "download")
    assert result.returncode == 2 and "wrong magic number" in result.stderr
    assert not (custom_dir(work / "data") / "t10k-labels-idx1-ubyte").exists()
    # a corrupt model checkpoint at evaluation
    write_params(work / "params.yaml", tiny_params(directory, checksums))
    stage(work, "download", check=True)
    (work / "outputs/model.pt").write_bytes(b"PK\x03\x04 truncated")
    result = stage(work, "evaluate")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("mnistflow: error: outputs/model.pt: corrupt")
    assert not (work / "outputs/metrics.json").exists()
