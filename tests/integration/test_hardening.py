"""What a hostile or unlucky user tried, each case reproduced with real parts.

Here: the cases that start processes or servers; the others are in tests/unit/test_hardening.py.
"""

from __future__ import annotations

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
from mnistflow.params import validate
from tests.helpers import (
    FLOW,
    MirrorServer,
    clean_env,
    custom_dir,
    one_line_error,
    run,
    stage,
    tiny_params,
    write_params,
)


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
        code = ("import runpy, sys; sys.argv = ['x']\n"
                "try:\n    runpy.run_module('mnistflow.dvc_stages.download', run_name='__main__')\n"
                "finally:\n    print('peak', next(line.split()[1] for line in open('/proc/self/status')"
                " if line.startswith('VmHWM')), file=sys.stderr)")
        result = run([sys.executable, "-c", code], workdir, clean_env())
    peak_kib = int(result.stderr.strip().splitlines()[-1].split()[1])
    error = [line for line in result.stderr.splitlines() if line.startswith("mnistflow: error")]
    assert result.returncode == 2 and error, result.stderr
    assert "decompresses to more than the 470416 bytes" in error[0] and "gzip bomb" in error[0]
    assert peak_kib < 200 * 1024, peak_kib  # 256 MiB never held; the interpreter and numpy are most of it
    assert not list((workdir / "data").rglob("*-ubyte")) and not list((workdir / "data").rglob(".*tmp"))


# 6, 7: what does not fit, or is not there, is refused before anything is written.

@pytest.mark.parametrize("section, named", [
    ({"model": {"hidden": [65536, 65536, 65536]}}, "model.hidden: "),
    ({"device": "cuda:7"}, "device: cuda:7 requested"),
])
def test_a_run_that_cannot_work_is_refused_before_anything_is_written(workdir, dataset, section, named):
    write_params(workdir / "params.yaml", tiny_params(*dataset, **section))
    for command in (FLOW, [sys.executable, "-m", "mnistflow.dvc_stages.train"]):
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


# Real time: a mirror that hangs and one that trickles are waited on for their budgets (about 20 s).
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
