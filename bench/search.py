"""Search against enumeration: ``python -m bench.search [--train-images 12000] [--seeds 3]``

On the real MNIST (MNISTFLOW_MIRROR), with the cnn-fast preset's network, through
``python -m flows.sweep`` itself (a Prefect server started for the purpose, a
local Dask cluster of two workers): a space of five parameters, every trial up
to 5 epochs,

- enumerated once as a grid of two values each (32 trials, every one to its
  last epoch);
- searched by the sweep's ``search:`` section (TPE, successive halving) with
  ``--seeds`` search seeds, each with a budget of ``--budget`` trials (default:
  as many as the grid's; pruned ones cost only the epochs they ran).

For each search it counts the epochs spent (every trial's, pruned ones at the
epoch they stopped, in the order they finished) up to and including the first
trial that matches the grid's best validation accuracy, and prints them against
the grid's epochs. Bar (issue 37): on average over the seeds, at most a third of
the grid's epochs. Also each search's best test accuracy and its time. To keep
this machine's run under half an hour the trials train on the first
``--train-images`` training images (the split's 20% validation is drawn from
them); the full test set is the test set. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BAR = 1 / 3
EPOCHS = 5
GRID = {"train.stages.0.lr": [0.003, 0.01], "train.batch_size": [128, 256], "model.hidden": [[128], [256]],
        "train.label_smoothing": [0.0, 0.1], "model.channels": [[16, 32], [32, 64]]}
SPACE = {"train.stages.0.lr": {"low": 0.001, "high": 0.03, "log": True},
         "train.batch_size": {"low": 64, "high": 512, "integer": True, "log": True},
         "model.hidden": {"choices": [[128], [256]]},
         "train.label_smoothing": {"low": 0.0, "high": 0.2},
         "model.channels": {"choices": [[16, 32], [32, 64]]}}


def subset(mirror: Path, folder: Path, count: int) -> dict:
    """A custom dataset of MNIST's first ``count`` training images and its whole test set; its checksums."""
    import gzip
    import hashlib

    from mnistflow.datasets import FILE_NAMES
    from mnistflow.idx import encode_idx, read_idx

    folder.mkdir(parents=True)
    checksums = {}
    for key in FILE_NAMES:
        array = read_idx(mirror / FILE_NAMES[key], 3 if "images" in key else 1)
        array = array[:count] if key.startswith("train") else array
        raw = encode_idx(array)
        (folder / FILE_NAMES[key]).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        checksums[key] = hashlib.md5(raw).hexdigest()
    return checksums


def sweep(work: Path, name: str, section: dict, env: dict[str, str]) -> list[dict]:
    """One ``python -m flows.sweep`` run; its trials' records, in the order they finished."""
    from harness.real_parts import run

    spec = work / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({"name": name, "base": "params.yaml", **section, "select": "val_accuracy",
                                    "workers": 2}))
    started = time.perf_counter()
    result = run([sys.executable, "-m", "flows.sweep", str(spec)], work, env, timeout=7200)
    if result.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    records = [json.loads(p.read_text()) for p in (work / "runs" / name).glob("*/trial.json")]
    return sorted(records, key=lambda r: datetime.fromisoformat(r["finished_at"]))


def epochs_to_match(records: list[dict], target: float) -> tuple[int | None, dict | None]:
    spent = 0
    for record in records:
        spent += int(record.get("epochs") or 0)
        if record["status"] == "completed" and record["val_accuracy"] >= target:
            return spent, record
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=12_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=None, help="trials per search (default: the grid's count)")
    args = parser.parse_args()
    mirror = Path(os.environ.get("MNISTFLOW_MIRROR", ""))
    if not (mirror / "train-images-idx3-ubyte.gz").exists():
        sys.exit("set MNISTFLOW_MIRROR to a directory holding the real MNIST *-ubyte.gz files")
    from harness.real_parts import PrefectServer

    with tempfile.TemporaryDirectory(prefix="mnistflow-search-bench-") as tmp:
        work = Path(tmp)
        checksums = subset(mirror, work / "mirror", args.train_images)
        base = yaml.safe_load((REPO / "presets/cnn-fast.yaml").read_text())
        base["data"] = {**base["data"], "dataset": "custom", "mirrors": [str(work / "mirror")], "checksums": checksums}
        base["train"] = {**base["train"], "threads": 1, "stages": [{**base["train"]["stages"][0], "epochs": EPOCHS}]}
        (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
        (work / "home").mkdir()
        server = PrefectServer(work / "home").start()
        try:
            env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("PREFECT_")},
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
            grid = sweep(work, "grid", {"grid": GRID}, env)
            trials = len(grid)
            searches = {seed: sweep(work, f"search-{seed}", {"search": {
                "sampler": "tpe", "trials": args.budget or trials, "seed": seed, "params": SPACE,
                "pruner": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3}}}, env)
                for seed in range(args.seeds)}
        finally:
            server.stop()
    report(grid, searches, args.train_images)


def report(grid: list[dict], searches: dict[int, list[dict]], images: int) -> None:
    grid_epochs = sum(int(r["epochs"]) for r in grid)
    top = max((r for r in grid if r["status"] == "completed"), key=lambda r: r["val_accuracy"])
    print(f"\ncnn-fast network, {images} MNIST training images, {EPOCHS} epochs at most, five parameters")
    print(f"grid: {len(grid)} trials, {grid_epochs} epochs, best validation accuracy {100 * top['val_accuracy']:.2f}% "
          f"(test {100 * top['test_accuracy']:.2f}%, {top['train_seconds']:.0f} s of training)")
    shares = []
    for seed, records in searches.items():
        spent, found = epochs_to_match(records, top["val_accuracy"])
        done = [r for r in records if r["status"] == "completed"]
        best = max(done, key=lambda r: r["val_accuracy"])
        pruned = sum(r["status"] == "pruned" for r in records)
        share = (spent if spent is not None else sum(int(r.get("epochs") or 0) for r in records)) / grid_epochs
        shares.append(share if spent is not None else float("inf"))
        print(f"search seed {seed}: {len(records)} trials ({pruned} pruned), "
              + (f"matched the grid's best after {spent} epochs ({share:.2f} of the grid's)" if spent is not None
                 else f"never matched the grid's best in its budget ({share:.2f} of the grid's epochs spent)")
              + f"; its best: validation {100 * best['val_accuracy']:.2f}%, test {100 * best['test_accuracy']:.2f}%, "
              f"{best['train_seconds']:.0f} s of training")
    mean = statistics.mean(shares)
    print(f"mean share of the grid's epochs: {mean:.2f} (bar: <= {BAR:.2f}: {'met' if mean <= BAR else 'NOT met'})")


if __name__ == "__main__":
    main()
