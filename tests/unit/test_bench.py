"""The seed-distribution benchmark's engine, on tiny generated data (the real runs live in bench/, not CI)."""

from __future__ import annotations

import json
import statistics

from bench.accuracy import over_seeds, report
from mnistflow.download import download
from mnistflow.params import validate
from tests.helpers import tiny_params


def test_over_seeds_trains_each_seed_once_and_reports_their_spread(workdir, dataset, capsys):
    directory, checksums = dataset
    params = validate(tiny_params(directory, checksums))
    files = download(params.data, workdir / "data")
    rows = over_seeds(params, files, workdir, 3)
    assert [r["seed"] for r in rows] == [0, 1, 2]
    assert len({r["test_accuracy"] for r in rows} | {r["train_seconds"] for r in rows}) > 1  # seeds differ
    for seed in range(3):
        model = workdir / f"seed-{seed}" / "model.pt"
        assert model.exists()
    record = report("tiny", params, rows, base=2.0)
    accuracies = [100 * r["test_accuracy"] for r in rows]
    assert record["test_accuracy"]["mean"] == statistics.fmean(accuracies)
    assert record["test_accuracy"]["std"] == statistics.stdev(accuracies)
    assert record["ratio"] == record["train_seconds"]["mean"] / 2.0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("seed 0: test ") and json.loads(lines[-1]) == record
    assert [r["seed"] for r in over_seeds(params, files, workdir / "later", 1, first=5)] == [5]  # a run in parts


def test_the_gpu_check_imports_and_names_its_cuda_graph_variants():
    import bench.gpu_check as check

    assert {"compile": "reduce-overhead"} in check.VARIANTS["default"]
    assert all(validate({"train": variant}) for variants in check.VARIANTS.values() for variant in variants)
