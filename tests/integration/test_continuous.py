"""Continuous training, in process: intake's sources and gate, increments, the stable
split, the recent-data slice, warm start, versions and rollback."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from lifecycle.intake import intake
from lifecycle.intake_sources import Limits, read_sources
from mnistflow.datasets import class_labels
from mnistflow.download import download
from mnistflow.dataset_files import locate
from mnistflow.idx import encode_idx
from mnistflow.increments import list_increments
from mnistflow.params import validate
from tests.helpers import make_arrays, tiny_params

CLASSES = class_labels("custom")
SHAPE = (28, 28)


def write_idx_pair(folder: Path, images: np.ndarray, labels: np.ndarray, stem: str = "new") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}-images-idx3-ubyte").write_bytes(encode_idx(images))
    (folder / f"{stem}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return folder / f"{stem}-images-idx3-ubyte"


def new_items(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    arrays = make_arrays(n_train=n, n_test=1, seed=seed)
    return arrays["train-images"], arrays["train-labels"]


def add(params, data_root: Path, sources: list[Path], time: str = "2026-12-01T00:00:00.000+00:00"):
    candidates = read_sources(sources, CLASSES, SHAPE, Limits())
    return intake(params.data.dataset, lambda: locate(params.data, data_root), data_root, candidates,
                  [str(s) for s in sources], time)


@pytest.fixture
def files(params, data_root):
    return download(params.data, data_root)


def _intake_in_process(args) -> int:
    params_dict, data_root, source = args
    params = validate(params_dict)
    return add(params, Path(data_root), [Path(source)]).accepted


def test_two_intakes_at_once_give_two_whole_increments(dataset, files, data_root, tmp_path):
    directory, checksums = dataset
    images, labels = new_items(400, seed=31)
    shared = images[:50]
    a = write_idx_pair(tmp_path / "a", images[:200], labels[:200])
    b = write_idx_pair(tmp_path / "b", np.concatenate([shared, images[200:]]),
                       np.concatenate([labels[:50], labels[200:]]))
    raw = tiny_params(directory, checksums)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.map(_intake_in_process, [(raw, str(data_root), str(a)), (raw, str(data_root), str(b))])
    increments = list_increments(files.directory)
    assert len(increments) == 2 and sorted(counts) == sorted(len(i.item_sha256) for i in increments)
    assert sum(counts) == 400  # the 50 shared images went in once
    assert len(set(increments[0].item_sha256) | set(increments[1].item_sha256)) == 400


# -- property tests of intake's parsers -----------------------------------------------------------------

