"""What a hostile or unlucky user tried, on the genuine data: a re-compressed copy of
Fashion-MNIST verifies by content (the others are in tests/unit/test_hardening.py and
tests/integration/test_hardening.py)."""

from __future__ import annotations

import os

import pytest

from mnistflow.download import download
from mnistflow.params import validate
from tests.helpers import REPO


def test_a_recompressed_genuine_fashion_mnist_verifies(workdir):
    mirror = REPO.parent / "shared/datasets/fashion-mnist"
    if not mirror.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide the genuine Fashion-MNIST in {mirror}")
        pytest.skip(f"no Fashion-MNIST copy at {mirror}")
    params = validate({"data": {"dataset": "fashion-mnist", "mirrors": [str(mirror)]}})
    files = download(params.data, workdir / "data", env={})
    assert files.md5["train-labels"] == "9018921c3c673c538a1fc5bad174d6f9"
