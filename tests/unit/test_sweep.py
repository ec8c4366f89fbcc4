"""Sweeps: the sweep file and its trials (unit), then real sweeps on a real Prefect
server and a real Dask LocalCluster of worker processes, on tiny data.

Here: the cases that run in this process and start nothing; the others are in tests/integration/test_sweep.py.
"""

from __future__ import annotations

import os

from lifecycle.leaderboard import sorted_rows
from lifecycle.sweep_spec import expand, load_spec, trial_id
from tests.helpers import tiny_params, write_sweep


def test_trials_cross_the_grid_sample_the_ranges_and_repeat_the_seeds(tmp_path, dataset):
    base = tiny_params(*dataset)
    spec = load_spec(write_sweep(tmp_path / "s.yaml", grid={"model.hidden": [[16], [32]]}, seeds=2, random={
        "trials": 3, "seed": 7, "params": {"train.stages.1.lr": {"low": 0.01, "high": 0.2, "log": True}}}))
    trials = expand(spec, base, "s.yaml")
    assert len(trials) == 2 * 3 * 2 and len({t.id for t in trials}) == 12
    assert {t.params.train.seed for t in trials} == {0, 1}
    assert all(0.01 <= t.params.train.stages[1].lr <= 0.2 for t in trials)
    again = expand(load_spec(tmp_path / "s.yaml"), base, "s.yaml")
    assert [(t.id, t.overrides) for t in again] == [(t.id, t.overrides) for t in trials]  # stable ids
    assert trials[0].id == trial_id(trials[0].overrides)


def test_leaderboard_ranks_by_the_validation_metric_failed_last():
    rows = [{"trial": "a", "status": "completed", "val_accuracy": 0.9, "val_loss": 0.3},
            {"trial": "b", "status": "failed"},
            {"trial": "c", "status": "completed", "val_accuracy": 0.95, "val_loss": 0.4}]
    assert [r["trial"] for r in sorted_rows(rows, "val_accuracy")] == ["c", "a", "b"]
    assert [r["trial"] for r in sorted_rows(rows, "val_loss")] == ["a", "c", "b"]


def test_local_cluster_fits_the_cores_and_gives_each_gpu_worker_its_own_device():
    from distributed import LocalCluster, SpecCluster

    from flows.dask_cluster import local_cluster

    cpu = local_cluster(workers=64, threads=1, gpus=0)
    assert cpu["cluster_class"] is LocalCluster
    assert cpu["cluster_kwargs"]["n_workers"] * 1 <= (os.cpu_count() or 1)
    assert local_cluster(workers=2, threads=64, gpus=0)["cluster_kwargs"]["n_workers"] == 1
    gpu = local_cluster(workers=4, threads=1, gpus=2)
    assert gpu["cluster_class"] is SpecCluster
    workers = gpu["cluster_kwargs"]["workers"]
    assert [w["options"]["env"]["CUDA_VISIBLE_DEVICES"] for w in workers.values()] == ["0", "1"]
    assert all(w["options"]["resources"] == {"GPU": 1} for w in workers.values())


def test_trials_over_two_custom_datasets_each_read_their_own(tmp_path):
    """Both custom datasets are named "custom": keyed by name, the second trial read the first's files."""
    from flows.sweep import datasets_of
    from lifecycle.sweep_spec import Trial
    from mnistflow.download import download
    from mnistflow.params import validate
    from tests.helpers import write_dataset

    trials = []
    for seed in (1, 2):
        checksums = write_dataset(tmp_path / f"mirror-{seed}", seed=seed, n_train=200, n_test=50)
        trials.append(Trial(f"t{seed}", {}, validate(tiny_params(tmp_path / f"mirror-{seed}", checksums))))
    files = datasets_of(trials, tmp_path / "data", download=download)
    assert files["t1"].directory != files["t2"].directory and files["t1"].digest != files["t2"].digest
    for trial in trials:
        assert files[trial.id].md5 == dict(trial.params.data.checksums)
