"""What a hostile or unlucky user tried, each case reproduced with real parts.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_hardening.py.
"""

from __future__ import annotations

import gzip
import hashlib

import pytest

from mnistflow.datasets import FILE_NAMES
from mnistflow.download import download
from mnistflow.errors import MnistflowError
from mnistflow.idx import encode_idx
from mnistflow.params import validate
from tests.helpers import MirrorServer, tiny_params

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


# 5: Fashion-MNIST re-compressed verifies by content; KMNIST says exactly what to set.


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
