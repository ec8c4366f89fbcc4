"""Custom datasets: the four files checked against each other before anything a later step reads.

Issue 24, class 1: every case here once ended in a torch, numpy or onnxruntime
traceback, some after a whole training run, leaving a model.pt with no metrics.
"""

from __future__ import annotations


import numpy as np

from tests.helpers import make_arrays, stage, tiny_params, write_dataset, write_params
from tests.helpers import one_line_error


def _changed(**changes) -> dict[str, np.ndarray]:
    arrays = make_arrays(n_train=200, n_test=50)
    for key, change in changes.items():
        arrays[key] = change(arrays[key])
    return arrays


CASES = {
    "fewer train images than labels": ({"train-images": lambda a: a[:190]},
                                       "train-labels-idx1-ubyte: 200 labels for the 190 images"),
    "fewer train labels than images": ({"train-labels": lambda a: a[:190]},
                                       "train-labels-idx1-ubyte: 190 labels for the 200 images"),
    "fewer test labels than images": ({"test-labels": lambda a: a[:40]},
                                      "t10k-labels-idx1-ubyte: 40 labels for the 50 images"),
    "test images of another size": ({"test-images": lambda a: a[:, :14, :14]},
                                    "t10k-images-idx3-ubyte: its images are 14x14, the training images"),
    "a train label of 12": ({"train-labels": lambda a: np.where(np.arange(len(a)) == 7, 12, a)},
                            "train-labels-idx1-ubyte: label 12 at item 7"),
    "a label of 255 in test only": ({"test-labels": lambda a: np.where(np.arange(len(a)) == 3, 255, a)},
                                    "t10k-labels-idx1-ubyte: label 255 at item 3"),
    "no test images": ({"test-images": lambda a: a[:0], "test-labels": lambda a: a[:0]},
                       "t10k-images-idx3-ubyte: holds 0 images"),
    "images with no rows": ({"train-images": lambda a: np.zeros((200, 0, 28), np.uint8),
                             "test-images": lambda a: np.zeros((50, 0, 28), np.uint8)},
                            "train-images-idx3-ubyte: its images are 0x28"),
}


def test_the_download_stage_says_it_in_one_line_and_no_split_is_made(tmp_path, workdir):
    mirror = tmp_path / "mirror"
    checksums = write_dataset(mirror, _changed(**CASES["fewer train labels than images"][0]))
    write_params(workdir / "params.yaml", tiny_params(mirror, checksums))
    error = one_line_error(stage(workdir, "download"))
    assert "190 labels for the 200 images" in error
    assert one_line_error(stage(workdir, "split")).endswith("(run the download step first)")
    assert not (workdir / "outputs" / "split.json").exists()


def test_a_cnn_whose_kernels_cannot_fit_custom_images_is_refused_before_the_split(tmp_path, workdir):
    mirror = tmp_path / "mirror"
    checksums = write_dataset(mirror, n_train=200, n_test=50, shape=(8, 8))
    write_params(workdir / "params.yaml", tiny_params(mirror, checksums, model={
        "kind": "cnn", "channels": [4, 4], "kernels": [5, 3], "hidden": [8]}))
    assert stage(workdir, "download").returncode == 0
    error = one_line_error(stage(workdir, "split"))
    assert "model.kernels: kernel 3 of convolution 2 is larger than the 2x2 image it gets" in error
    assert not (workdir / "outputs" / "split.json").exists()
