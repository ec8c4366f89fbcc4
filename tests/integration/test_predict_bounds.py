"""The predict CLI reads within bounds (issue 24, class 7): every input is checked from its first
bytes before any answer, and an IDX file of any length streams through in chunks."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import zlib

import pytest

from mnistflow.idx import encode_idx
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from serving.inputs import MAX_PICTURE_BYTES
from tests.conftest import run_stages
from tests.helpers import clean_env, make_arrays, run, tiny_params, write_dataset


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    checksums = write_dataset(root / "mirror")
    return run_stages(validate(tiny_params(root / "mirror", checksums)), root / "data", RunPaths(root / "run")).model


def predict(cwd, *args):
    return run([sys.executable, "-m", "serving.predict", *args], cwd, clean_env())


def refused(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def _idx_header(count: int) -> bytes:
    return bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (count, 28, 28))


def test_inputs_that_are_not_regular_files_are_refused_unread(model, tmp_path):
    assert "/dev/zero: not a regular file" in refused(predict(tmp_path, "--model", str(model), "/dev/zero"))
    assert "not a regular file" in refused(predict(tmp_path, "--model", str(model), str(tmp_path)))
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert "pipe.png: not a regular file" in refused(predict(tmp_path, "--model", str(model), str(fifo)))


def test_a_huge_sparse_picture_is_judged_by_its_first_bytes(model, tmp_path):
    zeros = tmp_path / "zeros.png"
    with open(zeros, "wb") as fh:
        fh.truncate(2**30)
    started = time.monotonic()
    assert "zeros.png: not an image (PNG, JPEG" in refused(predict(tmp_path, "--model", str(model), str(zeros)))
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(2**30)
    assert f"big.png: 1,073,741,824 bytes; a picture is at most {MAX_PICTURE_BYTES:,}" in refused(
        predict(tmp_path, "--model", str(model), str(big)))
    assert time.monotonic() - started < 30  # two CLI starts; neither read the gigabyte


def test_a_gzip_bomb_idx_stops_at_its_header(model, tmp_path):
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    body = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(bomb, "wb") as fh:
        fh.write(body.compress(_idx_header(10)))
        for _ in range(1024):  # a gigabyte of zeros, a megabyte on disk
            fh.write(body.compress(bytes(2**20)))
        fh.write(body.flush())
    assert os.path.getsize(bomb) < 2 * 2**20
    error = refused(predict(tmp_path, "--model", str(model), str(bomb)))
    assert "bomb-idx3-ubyte.gz: holds more than the 10 images its header declares" in error
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(_idx_header(10) + bytes(28 * 28 * 3))
    assert "wrong length" in refused(predict(tmp_path, "--model", str(model), str(short)))


def _peak_rss_kib(model, images) -> tuple[int, int]:
    """(lines printed, peak RSS) of one predict run."""
    proc = subprocess.Popen([sys.executable, "-m", "serving.predict", "--model", str(model), str(images)],
                            cwd=images.parent, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = sum(1 for _ in proc.stdout)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
    return lines, usage.ru_maxrss


def test_an_idx_of_many_images_streams_in_little_memory(model, tmp_path):
    digits = make_arrays(n_train=1000, n_test=0)["train-images"]
    peaks = {}
    for n in (1000, 200_000):  # 200,000: 157 MB of pixels, 627 MB as float32 all at once
        images = tmp_path / f"many-{n}-idx3-ubyte.gz"
        with gzip.open(images, "wb", compresslevel=1) as fh:
            fh.write(_idx_header(n))
            for _ in range(n // 1000):
                fh.write(digits.tobytes())
        lines, peaks[n] = _peak_rss_kib(model, images)
        assert lines == n
    # The same memory for 200 times the images: one chunk at a time, never the whole file.
    # (Measured here: 546 MiB both, with the default MLP.)
    assert peaks[200_000] - peaks[1000] < 64 * 1024, peaks


def test_a_newline_in_a_file_name_cannot_split_the_output(model, tmp_path):
    name = tmp_path / "two\nlines-idx3-ubyte"
    name.write_bytes(encode_idx(make_arrays(n_train=3, n_test=0)["train-images"]))
    result = predict(tmp_path, "--model", str(model), str(name))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(json.dumps(str(name))[:-1]) for line in lines)
