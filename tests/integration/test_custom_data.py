"""Custom datasets: the four files checked against each other before anything a later step reads.

Issue 24, class 1: every case here once ended in a torch, numpy or onnxruntime
traceback, some after a whole training run, leaving a model.pt with no metrics.

Here: the cases that start processes or servers; the others are in tests/unit/test_custom_data.py.
"""

from __future__ import annotations

from tests.helpers import CASES, _changed, one_line_error, stage, tiny_params, write_dataset, write_params


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
