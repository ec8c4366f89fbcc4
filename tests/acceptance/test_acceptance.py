"""Acceptance: the default recipe on the real MNIST reaches 96% on validation and test.

Reaches the data as an air-gapped user would, through MNISTFLOW_MIRROR; skipped
(and says why) where no copy is reachable; CI always provides one.
"""

import json
import shutil

import pytest

from tests.helpers import PIPELINE_STAGES, REPO, clean_env, stage


@pytest.mark.slow
def test_default_recipe_reaches_96_percent_on_real_mnist(tmp_path, real_mnist):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = clean_env(MNISTFLOW_MIRROR=str(real_mnist))
    for name in PIPELINE_STAGES:
        stage(tmp_path, name, env, check=True)
    metrics = json.loads((tmp_path / "outputs/evaluation.json").read_text())
    assert metrics["dataset"]["digest"]
    assert (metrics["dataset"]["train_size"], metrics["dataset"]["val_size"], metrics["dataset"]["test_size"]) \
        == (48_000, 12_000, 10_000)
    assert metrics["epochs"] == 10
    assert metrics["val"]["accuracy"] >= 0.96, metrics["val"]
    assert metrics["test"]["accuracy"] >= 0.96, metrics["test"]


def train_preset(work, preset: str, mirror) -> dict:
    """A preset through the DVC stages' commands, the data through the mirror setting; its metrics."""
    shutil.copy(REPO / "presets" / f"{preset}.yaml", work / "params.yaml")
    env = clean_env(MNISTFLOW_MIRROR=str(mirror))
    for name in ("download", "split", "train", "evaluate"):
        stage(work, name, env, check=True)
    return json.loads((work / "outputs/evaluation.json").read_text())


@pytest.mark.slow
def test_cnn_fast_preset_reaches_99_percent_on_real_mnist(tmp_path, real_mnist):
    metrics = train_preset(tmp_path, "cnn-fast", real_mnist)
    assert metrics["architecture"]["kind"] == "cnn"
    assert metrics["test"]["accuracy"] >= 0.99, metrics["test"]


@pytest.mark.slow
def test_fashion_cnn_fast_preset_reaches_91_percent_on_genuine_fashion_mnist(tmp_path, real_fashion):
    metrics = train_preset(tmp_path, "fashion-cnn-fast", real_fashion)
    assert metrics["dataset"]["name"] == "fashion-mnist" and metrics["architecture"]["padding"] == "same"
    assert metrics["test"]["accuracy"] >= 0.91, metrics["test"]


@pytest.mark.slow
def test_one_mirror_root_serves_mnist_and_fashion_mnist(tmp_path, real_mnist, real_fashion):
    """The README's air-gapped setting: one folder per dataset under MNISTFLOW_MIRROR_ROOT,
    and the same setting downloads either dataset (no MNISTFLOW_MIRROR at all)."""
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "mnist").symlink_to(real_mnist)
    (root / "fashion-mnist").symlink_to(real_fashion)
    env = clean_env(MNISTFLOW_MIRROR_ROOT=str(root))
    for dataset in ("mnist", "fashion-mnist"):
        (tmp_path / "params.yaml").write_text(f"data: {{dataset: {dataset}}}\n")
        result = stage(tmp_path, "download", env, check=True)
        assert f"fetched train-images-idx3-ubyte.gz from {root / dataset}" in result.stderr
        assert json.loads((tmp_path / "data" / dataset / "checksums.json").read_text())
