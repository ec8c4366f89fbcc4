"""What a hostile or unlucky user tried, each case reproduced with real parts."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from mnistflow import atomic
from mnistflow.datasets import FILE_NAMES
from mnistflow.download import download
from mnistflow.errors import MnistflowError
from mnistflow.fetch import Limits
from mnistflow.idx import encode_idx
from mnistflow.params import validate
from tests.helpers import custom_dir, REPO, MirrorServer, clean_env, run, stage, tiny_params, write_params

FLOW = [sys.executable, "-m", "flows.training"]


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error: one line, the last, after any progress the command logged."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("mnistflow: error: ")]
    assert errors == lines[-1:], result.stderr
    return errors[0]


# 1, 3, 4: downloads that break, hang or trickle; wrong bytes are not retried.

def test_a_mirror_that_closes_mid_body_falls_through_to_the_next(workdir, dataset):
    directory, checksums = dataset
    with MirrorServer(directory) as server:
        mirrors = [f"{server.url}/cut/", f"{server.url}/good/"]
        params = validate(tiny_params(directory, checksums, data={"mirrors": mirrors}))
        files = download(params.data, workdir / "data", backoff=0)
        assert files.md5 == checksums
        name = FILE_NAMES["train-images"]
        assert server.requests.count(f"/cut/{name}") == 3  # a transient fault: retried, then the next mirror
        assert server.requests.count(f"/good/{name}") == 1


def test_silent_and_trickling_mirrors_are_given_up_on_in_bounded_time(workdir, dataset, caplog):
    directory, checksums = dataset
    limits = Limits(connect=1.0, grace=1.0, min_rate=100_000)
    with MirrorServer(directory) as server:
        params = validate(tiny_params(directory, checksums, data={
            "mirrors": [f"{server.url}/hang/", f"{server.url}/trickle/", f"{server.url}/good/"]}))
        files = download(params.data, workdir / "data", backoff=0, limits=limits)
        assert files.md5 == checksums
        name = FILE_NAMES["train-images"]
        # neither is asked twice for a file: it would only wait as long again
        assert server.requests.count(f"/hang/{name}") == 1 and server.requests.count(f"/trickle/{name}") == 1
        # The trickle sends a byte every 0.3 s, so the bytes it got in are the clock: each file was
        # given up on at its own budget (grace plus size at min_rate), not later. No wall-time bound,
        # which a busy CI machine breaks; a slow machine only gets fewer bytes in.
        given_up = [int(n) for n in re.findall(r"too slow: (\d+) bytes", caplog.text)]
        sizes = [(directory / FILE_NAMES[kind]).stat().st_size for kind in FILE_NAMES]
        assert len(given_up) == len(sizes) and caplog.text.count("no answer within 1s") == len(sizes)
        for received, size in zip(given_up, sizes):
            budget = limits.grace + size / limits.min_rate
            assert received <= budget / 0.3 + 10, (received, budget)

        # Only such mirrors: the error names each and why, and is not worth a task retry.
        params = validate(tiny_params(directory, checksums, data={"mirrors": [f"{server.url}/hang/",
                                                                             f"{server.url}/trickle/"]}))
        with pytest.raises(MnistflowError) as info:
            download(params.data, workdir / "other", backoff=0, limits=limits)
        message = str(info.value)
        assert f"{server.url}/hang/ (no answer within 1s)" in message
        assert f"{server.url}/trickle/ (too slow" in message
        assert info.value.retryable is False


def test_wrong_bytes_are_not_retried_but_a_refused_connection_is(workdir, dataset, tmp_path):
    directory, checksums = dataset
    with MirrorServer(directory) as server:
        corrupt = validate(tiny_params(directory, checksums, data={"mirrors": [f"{server.url}/corrupt/"]}))
        with pytest.raises(MnistflowError) as info:
            download(corrupt.data, workdir / "data", backoff=0)
    assert info.value.retryable is False and "MNISTFLOW_MIRROR" not in str(info.value)
    refused = validate(tiny_params(directory, checksums, data={"mirrors": ["http://127.0.0.1:9/"]}))
    with pytest.raises(MnistflowError) as info:
        download(refused.data, workdir / "data", retries=0)
    assert info.value.retryable is True and "MNISTFLOW_MIRROR" in str(info.value)


@pytest.mark.slow
def test_the_download_task_runs_once_for_wrong_bytes(tmp_path, dataset, prefect_server):
    directory, checksums = dataset
    with MirrorServer(directory) as server:
        write_params(tmp_path / "params.yaml", tiny_params(directory, checksums,
                                                           data={"mirrors": [f"{server.url}/corrupt/"]}))
        result = run(FLOW, tmp_path, prefect_server.env)
    assert result.returncode == 2 and "not a complete gzip file" in result.stderr
    # each of mnistflow's warnings once on the terminal (not also through the root logger)
    warnings = [line.split(" | ", 1)[1] for line in result.stderr.splitlines() if "| WARNING | mnistflow" in line]
    assert warnings and len(warnings) == len(set(warnings)), warnings
    runs = prefect_server.post("/flow_runs/filter", {  # the newest failed run started by hand
        "flow_runs": {"deployment_id": {"is_null_": True}, "state": {"type": {"any_": ["FAILED"]}}},
        "sort": "START_TIME_DESC", "limit": 1})
    tasks = prefect_server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [runs[0]["id"]]}}})
    downloads = [(t["name"].rsplit("-", 1)[0], t["run_count"]) for t in tasks if t["name"].startswith("download")]
    assert downloads == [("download", 1)]


# 2: a gzip bomb stops at the bound, in little memory, over HTTP and from a directory.

def _bomb(directory: Path, checksums: dict[str, str]) -> None:
    """A valid gzip whose IDX header says 600 images but which holds 256 MiB."""
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (600, 28, 28))
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(header)] + [deflate.compress(bytes(1 << 20)) for _ in range(256)]
    (directory / FILE_NAMES["train-images"]).write_bytes(b"".join(parts) + deflate.flush())


@pytest.mark.integration
@pytest.mark.parametrize("over", ["directory", "http"])
def test_a_gzip_bomb_stops_at_the_bound_in_little_memory(workdir, dataset, tmp_path, over):
    directory, checksums = dataset
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    for name in FILE_NAMES.values():
        (bomb / name).write_bytes((directory / name).read_bytes())
    _bomb(bomb, checksums)
    with MirrorServer(bomb) as server:
        mirror = str(bomb) if over == "directory" else f"{server.url}/good/"
        write_params(workdir / "params.yaml", tiny_params(mirror, checksums))
        # The peak of this process alone: VmHWM (ru_maxrss would carry pytest's over the exec).
        code = ("import runpy, sys; sys.argv = ['x', 'download']\n"
                "try:\n    runpy.run_module('mnistflow.stages', run_name='__main__')\n"
                "finally:\n    print('peak', next(line.split()[1] for line in open('/proc/self/status')"
                " if line.startswith('VmHWM')), file=sys.stderr)")
        result = run([sys.executable, "-c", code], workdir, clean_env())
    peak_kib = int(result.stderr.strip().splitlines()[-1].split()[1])
    error = [line for line in result.stderr.splitlines() if line.startswith("mnistflow: error")]
    assert result.returncode == 2 and error, result.stderr
    assert "decompresses to more than the 470416 bytes" in error[0] and "gzip bomb" in error[0]
    assert peak_kib < 200 * 1024, peak_kib  # 256 MiB never held; the interpreter and numpy are most of it
    assert not list((workdir / "data").rglob("*-ubyte")) and not list((workdir / "data").rglob(".*tmp"))


# 5: Fashion-MNIST re-compressed verifies by content; KMNIST says exactly what to set.

def test_a_recompressed_genuine_fashion_mnist_verifies(workdir):
    mirror = REPO.parent / "shared/datasets/fashion-mnist"
    if not mirror.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the genuine Fashion-MNIST in {mirror}")
        pytest.skip(f"no Fashion-MNIST copy at {mirror}")
    params = validate({"data": {"dataset": "fashion-mnist", "mirrors": [str(mirror)]}})
    files = download(params.data, workdir / "data", env={})
    assert files.md5["train-labels"] == "9018921c3c673c538a1fc5bad174d6f9"


def test_a_recompressed_kmnist_names_the_checksums_to_set(workdir, tmp_path):
    from tests.helpers import make_arrays

    directory = tmp_path / "kmnist-shaped"  # KMNIST's sizes, other bytes: as a re-compressed copy looks
    directory.mkdir()
    checksums = {}
    for key, array in make_arrays(n_train=60_000, n_test=10_000).items():
        raw = encode_idx(array)
        (directory / FILE_NAMES[key]).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        checksums[key] = hashlib.md5(raw).hexdigest()
    params = validate({"data": {"dataset": "kmnist", "mirrors": [str(directory)]}})
    with pytest.raises(MnistflowError) as info:
        download(params.data, workdir / "data", env={})
    message = str(info.value)
    assert "set data.checksums in params.yaml" in message and checksums["train-images"] in message
    assert "MNISTFLOW_MIRROR" not in message


# 6, 7: what does not fit, or is not there, is refused before anything is written.

@pytest.mark.integration
@pytest.mark.parametrize("section, named", [
    ({"model": {"hidden": [65536, 65536, 65536]}}, "model.hidden: "),
    ({"device": "cuda:7"}, "device: cuda:7 requested"),
])
def test_a_run_that_cannot_work_is_refused_before_anything_is_written(workdir, dataset, section, named):
    write_params(workdir / "params.yaml", tiny_params(*dataset, **section))
    for command in (FLOW, [sys.executable, "-m", "mnistflow.stages", "train"]):
        line = one_line_error(run(command, workdir, clean_env()))
        assert named in line
        if "hidden" in named:
            assert "GiB" in line and "available" in line
        assert sorted(p.name for p in workdir.iterdir()) == ["params.yaml"]


# 8: a full disk is one line naming the file, not retried, nothing half-written.

@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("a 64 KiB tmpfs is how this test fills a disk for real, and it could not be mounted: "
                    + done.stderr.strip())
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_file(workdir, dataset, small_disk):
    with pytest.raises(MnistflowError, match=r"big.bin: no space left on the device for its 100,000 bytes"):
        atomic.write_bytes(small_disk / "big.bin", bytes(100_000))
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    line = one_line_error(stage(workdir, "download", args=["--data-root", str(small_disk / "data")]))
    assert "no space left on the device" in line and "train-images-idx3-ubyte" in line
    assert not [p for p in small_disk.rglob("*") if p.is_file()]


# 9: long messages are whole.

@pytest.mark.integration
def test_a_long_error_message_keeps_its_end(workdir, dataset):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    stage(workdir, "download", check=True)
    stage(workdir, "split", check=True)
    run_dir = workdir / ("a-rather-long-folder-name-for-this-run-" * 4)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "split.json").write_bytes((workdir / "outputs/split.json").read_bytes())
    (run_dir / "checkpoints/last.pt").write_bytes(b"not a zip at all")
    line = one_line_error(stage(workdir, "train", args=["--run-dir", str(run_dir)]))
    assert len(line) > 300 and line.endswith("delete it to train from scratch")


# 10: a data file changed after download is noticed.

@pytest.mark.integration
def test_a_data_file_changed_after_download_is_refused(workdir, dataset):
    write_params(workdir / "params.yaml", tiny_params(*dataset))
    for name in ("download", "split", "train"):
        stage(workdir, name, check=True)
    labels = custom_dir(workdir / "data") / "t10k-labels-idx1-ubyte"
    os.utime(labels)  # touched, not changed: hashed again, and still fine
    stage(workdir, "evaluate", check=True)
    raw = bytearray(labels.read_bytes())
    raw[-1] = (raw[-1] + 1) % 10
    labels.write_bytes(bytes(raw))
    line = one_line_error(stage(workdir, "evaluate"))
    assert "t10k-labels-idx1-ubyte: changed since it was downloaded" in line


# 11: a replaced champion is noticed on every retraining run.

@pytest.mark.slow
def test_a_replaced_champion_stops_the_retraining_run(tmp_path, dataset, prefect_server):
    write_params(tmp_path / "params.yaml", tiny_params(*dataset))
    retrain = [sys.executable, "-m", "flows.retrain", "--registry", "reg"]
    first = run(retrain, tmp_path, prefect_server.env)
    assert first.returncode == 0 and "promoted: no champion yet" in first.stdout, first.stderr
    record = json.loads((tmp_path / "reg/champion/record.json").read_text())
    champion = tmp_path / "reg/champion/model.pt"
    assert record["model_sha256"] == hashlib.sha256(champion.read_bytes()).hexdigest()
    replaced = bytearray(champion.read_bytes())
    replaced[-30] ^= 0xFF
    champion.write_bytes(bytes(replaced))
    second = run(retrain, tmp_path, prefect_server.env)
    assert second.returncode == 2, second.stdout + second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("mnistflow: error: ")]
    assert len(errors) == 1 and "was replaced or damaged" in errors[0] and "Traceback" not in second.stderr
