"""Continuous training, in process: intake's sources and gate, increments, the stable
split, the recent-data slice, warm start, versions and rollback.

Here: the cases that start processes or servers; the others are in tests/unit/test_continuous.py.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from mnistflow.increments import list_increments
from mnistflow.params import validate
from tests.helpers import add_items, new_items, tiny_params, write_idx_pair


def _intake_in_process(args) -> int:
    params_dict, data_root, source = args
    params = validate(params_dict)
    return add_items(params, Path(data_root), [Path(source)]).accepted


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

