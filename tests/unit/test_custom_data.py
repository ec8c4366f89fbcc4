"""Custom datasets: the four files checked against each other before anything a later step reads.

Issue 24, class 1: every case here once ended in a torch, numpy or onnxruntime
traceback, some after a whole training run, leaving a model.pt with no metrics.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_custom_data.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistflow.dataset_check import DatasetShape
from mnistflow.dataset_files import MANIFEST, dataset_dir
from mnistflow.download import download
from mnistflow.errors import MnistflowError
from mnistflow.params import validate
from mnistflow.preflight import check_network_fits, memory_estimate
from tests.helpers import CASES, _changed, make_arrays, tiny_params, write_dataset


@pytest.mark.parametrize("case", CASES)
def test_files_that_disagree_are_refused_before_the_manifest(case, tmp_path, workdir):
    changes, message = CASES[case]
    mirror = tmp_path / "mirror"
    params = validate(tiny_params(mirror, write_dataset(mirror, _changed(**changes))))
    with pytest.raises(MnistflowError) as info:
        download(params.data, workdir / "data")
    assert message in str(info.value) and "\n" not in str(info.value)
    # no manifest: the split (and every later step) has nothing to start from
    assert not (dataset_dir(params.data, workdir / "data") / MANIFEST).exists()


def test_the_memory_estimate_counts_the_custom_images_from_their_headers(tmp_path, workdir):
    mirror = tmp_path / "mirror"
    checksums = write_dataset(mirror, n_train=300, n_test=100, shape=(64, 64))
    params = validate(tiny_params(mirror, checksums, model={"kind": "cnn", "channels": [8, 16], "kernels": [5, 3]}))
    files = download(params.data, workdir / "data")
    assert files.shape == DatasetShape(300, 100, (64, 64))
    estimate = memory_estimate(params, files.shape)
    assert estimate["data"] == 400 * (4 * 64 * 64 + 8)
    # 64x64 images make every convolution's output about 5x larger than 28x28 ones would
    assert estimate["activations"] > 4 * memory_estimate(params)["activations"]
    check_network_fits(params, files.shape)


def test_the_memory_refusal_names_the_convolutions_when_they_are_the_cause():
    from mnistflow.device import DeviceChoice
    from mnistflow.preflight import check_memory

    params = validate({"model": {"kind": "cnn", "channels": [4096, 4096], "kernels": [3, 3], "hidden": [8]},
                       "train": {"batch_size": 1}})
    with pytest.raises(MnistflowError) as info:
        check_memory(params, DeviceChoice("cpu", "requested"))
    assert str(info.value).startswith("model.channels: a run with model.channels [4096, 4096]")
    wide = validate({"model": {"hidden": [60_000, 60_000]}, "train": {"batch_size": 1}})
    with pytest.raises(MnistflowError, match=r"^model.hidden: "):
        check_memory(wide, DeviceChoice("cpu", "requested"))


def test_two_custom_datasets_never_share_a_folder(tmp_path, workdir):
    one, two = tmp_path / "one", tmp_path / "two"
    first = validate(tiny_params(one, write_dataset(one, seed=1)))
    second = validate(tiny_params(two, write_dataset(two, seed=2)))
    a, b = download(first.data, workdir / "data"), download(second.data, workdir / "data")
    assert a.directory != b.directory and Path(a.directory).parent == Path(b.directory).parent == workdir / "data/custom"
    assert download(first.data, workdir / "data").md5 == a.md5  # the second did not replace the first's files
    assert json.loads((Path(a.directory) / MANIFEST).read_text()) == a.md5


def test_a_class_with_no_test_images_has_null_accuracy(tmp_path, workdir):
    from mnistflow.evaluate import evaluate
    from mnistflow.paths import RunPaths
    from mnistflow.session import open_session
    from mnistflow.split import make_split
    from mnistflow.train import train_all
    from tests.helpers import cpu_runtime

    arrays = make_arrays(n_train=300, n_test=60)
    keep = arrays["test-labels"] != 9
    arrays["test-images"], arrays["test-labels"] = arrays["test-images"][keep], arrays["test-labels"][keep]
    mirror = tmp_path / "mirror"
    params = validate(tiny_params(mirror, write_dataset(mirror, arrays), train={"stages": [{"epochs": 1, "lr": 0.5}]}))
    files, paths = download(params.data, workdir / "data"), RunPaths(workdir / "outputs")
    make_split(files, params.data, paths.split)
    runtime = cpu_runtime()
    train_all(params, open_session(params, files, paths, runtime.device), files, paths)
    session = open_session(params, files, paths, runtime.device)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    per_class = json.loads(paths.evaluation.read_text())["test"]["per_class_accuracy"]
    assert per_class["9"] is None and all(isinstance(per_class[str(d)], float) for d in range(9))
    assert metrics["test"]["accuracy"] is not None
