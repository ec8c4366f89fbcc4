"""A training set of any size trains as well as one the batch size divides (issue 39, section 1).

The loss is a mean over the batch, so a last batch of one image took a full step
on that image alone: MNIST grown by 801 clean digits (48,801 training images)
trained for one epoch predicted "8" for every test digit. Batches are now of
near-equal sizes (tensors.batches).

Here: the cases on the real MNIST; the others are in tests/unit/test_batch_remainder.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import yaml

from mnistflow.checkpoints import load_model
from mnistflow.device import select_device
from mnistflow.download import download
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from mnistflow.scoring import evaluate_tensors
from mnistflow.session import open_session
from mnistflow.split import make_split
from mnistflow.dvc_stages import run_dvc_stage
from mnistflow.tensors import LabelledTensors
from mnistflow.train import train_all
from tests.helpers import REPO

GROWN = REPO.parent / "shared" / "fixtures" / "grown-mnist" / "20261206T194836333Z-cc665cae"


def recipe(mirror: Path, epochs: int | None = None):
    """The default recipe (params.yaml) on the real MNIST; ``epochs`` at lr 0.5 alone when given."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["mirrors"] = [str(mirror)]
    if epochs is not None:
        raw["train"]["stages"] = [{"epochs": epochs, "lr": 0.5}]
    return validate(raw)


def test_mnist_grown_by_801_clean_digits_trains_as_the_base_does(real_mnist, tmp_path):
    """The tester's case, exactly: the fixture's increment, one epoch from scratch at lr 0.5."""
    if not GROWN.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{GROWN}: missing; CI has ../shared/fixtures beside the checkout")
        pytest.skip(f"{GROWN}: not here")
    params = recipe(real_mnist, epochs=1)
    accuracy = {}
    for name, increments in (("base", []), ("grown", [GROWN])):
        work = tmp_path / name
        for increment in increments:
            shutil.copytree(increment, work / "data" / "mnist" / "increments" / increment.name)
        paths = RunPaths(work / "outputs")
        for stage in ("download", "split", "train", "evaluate"):
            run_dvc_stage(stage, params, work / "data", paths)
        evaluation = yaml.safe_load(paths.evaluation.read_text())
        accuracy[name] = evaluation["test"]["accuracy"]
        assert evaluation["val"]["loss"] < 0.5, (name, evaluation["val"]["loss"])  # it was 119.95
    assert evaluation["dataset"]["train_size"] == 48_801
    assert accuracy["grown"] > accuracy["base"] - 0.01, accuracy  # it was 9.74% against 94.4%


def test_a_remainder_of_1_or_50_images_trains_as_well_as_whole_batches(real_mnist, tmp_path):
    params = recipe(real_mnist)
    files = download(params.data, tmp_path / "data")
    accuracy = {}
    for n in (47_900, 47_901, 47_950):
        paths = RunPaths(tmp_path / str(n))
        make_split(files, params.data, paths.split)
        session = open_session(params, files, paths, select_device("cpu"))
        train = session.data.train
        session = dataclasses.replace(session, data=dataclasses.replace(
            session.data, train=LabelledTensors(train.x[:n], train.y[:n])))
        train_all(params, session, files, paths, on_epoch=lambda report: None)
        model, _ = load_model(paths.model)
        accuracy[n] = evaluate_tensors(model, session.data.test)[1]
    # Seeds move the recipe's test accuracy by about 0.3 points (docs/performance.md): 1 point is noise's bound.
    assert min(accuracy.values()) > accuracy[47_900] - 0.01 and accuracy[47_900] > 0.96, accuracy
