"""Warm start against training from scratch, after data arrives.

    python -m bench.warm_start [--seeds 5] [--increment 5000] [--work .bench/warm-start]

The real MNIST through MNISTFLOW_MIRROR, split as a team that gets data late
would have it: a custom dataset of the first 55,000 training images (and the
published test set) on which a champion is trained with the default recipe;
then the last 5,000 training images arrive through intake (the gate and the
increment of lifecycle/intake.py, as ``python -m flows.intake`` runs them).
On base + increment, for each seed: the default recipe from scratch (10 epochs)
and a warm start (the retrain's ``--warm-start``: Params.warm_started) with the
default ``train.warm_stages`` (2 epochs at lr 0.1) from that seed's champion. Prints each run, then mean, spread and
the ratio of training times; asserts nothing (times here are noisy).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import statistics
import time
from pathlib import Path

from bench.ours import time_training
from lifecycle.intake import intake
from lifecycle.intake_sources import Limits, read_sources
from mnistflow import atomic
from mnistflow.datasets import FILE_NAMES, class_labels
from mnistflow.download import download
from mnistflow.dataset_files import locate
from mnistflow.evaluate import evaluate
from mnistflow.idx import encode_idx, read_idx
from mnistflow.params import validate
from mnistflow.paths import RunPaths
from mnistflow.starting_point import WarmStart


def late_data(mirror: Path, work: Path, increment: int) -> tuple[dict, Path]:
    """A custom dataset without the last ``increment`` training images, and those images as an IDX pair."""
    images = read_idx(mirror / FILE_NAMES["train-images"], 3)
    labels = read_idx(mirror / FILE_NAMES["train-labels"], 1)
    base = {"train-images": images[:-increment], "train-labels": labels[:-increment],
            "test-images": read_idx(mirror / FILE_NAMES["test-images"], 3),
            "test-labels": read_idx(mirror / FILE_NAMES["test-labels"], 1)}
    checksums = {}
    (work / "mirror").mkdir(parents=True, exist_ok=True)
    for key, array in base.items():
        raw = encode_idx(array)
        (work / "mirror" / FILE_NAMES[key]).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        checksums[key] = hashlib.md5(raw).hexdigest()
    arriving = work / "arriving"
    arriving.mkdir(exist_ok=True)
    (arriving / "late-images-idx3-ubyte").write_bytes(encode_idx(images[-increment:]))
    (arriving / "late-labels-idx1-ubyte").write_bytes(encode_idx(labels[-increment:]))
    return checksums, arriving / "late-images-idx3-ubyte"


def run(raw: dict, files, folder: Path, warm_start: WarmStart | None = None) -> dict:
    params = validate(raw).warm_started() if warm_start else validate(raw)
    paths = RunPaths(folder)
    seconds, session = time_training(params, files, paths, warm_start)
    metrics = evaluate(params, session.data, files, session.runtime, paths)
    return {"seconds": seconds, "test": metrics["test"]["accuracy"], "recent": metrics["recent"]["accuracy"]
            if "recent" in metrics else None, "model": paths.model}


def summary(name: str, rows: list[dict]) -> tuple[float, float]:
    test = [r["test"] for r in rows]
    seconds = [r["seconds"] for r in rows]
    spread = statistics.stdev(test) if len(test) > 1 else 0.0
    print(f"{name:22} test {100 * statistics.mean(test):.2f}% +- {100 * spread:.2f} (min {100 * min(test):.2f}%), "
          f"train {statistics.mean(seconds):.2f} s +- {statistics.stdev(seconds) if len(seconds) > 1 else 0:.2f}")
    return statistics.mean(test), statistics.mean(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--increment", type=int, default=5000)
    parser.add_argument("--work", type=Path, default=Path(".bench/warm-start"))
    args = parser.parse_args()
    # Read here, then unset: the custom datasets below have their own mirror.
    mirror = Path(os.environ.pop("MNISTFLOW_MIRROR", ""))
    if not (mirror / FILE_NAMES["train-images"]).exists():
        raise SystemExit("set MNISTFLOW_MIRROR to a folder with MNIST's four *-ubyte.gz files")
    checksums, arriving = late_data(mirror, args.work, args.increment)
    data = {"dataset": "custom", "mirrors": [str(args.work / "mirror")], "checksums": checksums}
    data_root = args.work / "data"
    shutil.rmtree(data_root, ignore_errors=True)  # every run starts without increments
    base_files = download(validate({"data": data}).data, data_root)

    champions = []
    for seed in range(args.seeds):
        champions.append(run({"data": data, "train": {"seed": seed}}, base_files, args.work / f"champion-{seed}"))
    summary("champion (55k)", champions)

    started = time.perf_counter()
    candidates = read_sources([arriving], class_labels("custom"), (28, 28), Limits())
    report = intake("custom", lambda: locate(validate({"data": data}).data, data_root), data_root,
                    candidates, [str(arriving)], "2026-12-01T00:00:00.000+00:00")
    print(f"{report.summary()} in {time.perf_counter() - started:.1f} s; refused:",
          {r["reason"].split(" (")[0] for r in report.refused} or "none")
    files = locate(validate({"data": data}).data, data_root)

    scratch, warm = [], []
    for seed, champion in enumerate(champions):
        scratch.append(run({"data": data, "train": {"seed": seed}}, files, args.work / f"scratch-{seed}"))
        start = WarmStart(champion["model"], atomic.sha256_of(champion["model"]))
        warm.append(run({"data": data, "train": {"seed": seed}}, files, args.work / f"warm-{seed}", start))
        print(f"seed {seed}: scratch {100 * scratch[-1]['test']:.2f}% in {scratch[-1]['seconds']:.2f} s, "
              f"warm {100 * warm[-1]['test']:.2f}% in {warm[-1]['seconds']:.2f} s "
              f"(recent data: {100 * scratch[-1]['recent']:.2f}% vs {100 * warm[-1]['recent']:.2f}%)")
    scratch_acc, scratch_s = summary("from scratch (60k)", scratch)
    warm_acc, warm_s = summary("warm start (60k)", warm)
    print(f"warm start / from scratch: training time {warm_s / scratch_s:.2f}x (bar: <= 0.33x), "
          f"test accuracy {100 * (warm_acc - scratch_acc):+.2f} points (bar: >= 0)")


if __name__ == "__main__":
    main()
