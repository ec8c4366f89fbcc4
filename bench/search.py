"""Search against enumeration: ``python -m bench.search [--seeds 3] [--work DIR]``

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
the grid's epochs. Also each search's best test accuracy, that trial's training
time and the search's wall time, and how early an epoch ranks the grid's trials
as their last epoch does (why the pruner judges from the second). The trials
train on MNIST's whole training set (``--train-images`` takes its first N
instead; the split's 20% validation is drawn from them) and are tested on the
whole test set: on a 2-core CPU about 15 minutes for the grid, 4 for its best
point over seeds and 13 for each search. Asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
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
# The first epoch of a one-cycle run is its warm-up, and says little of the last
# (the grid's rank correlation, epoch 1 with epoch 5: 0.43; epoch 2: 0.83), so
# trials are judged from their second epoch. Five random trials, not Optuna's ten,
# before TPE models the space: the budget is only as many trials as the grid's.
PRUNER = {"name": "successive_halving", "min_resource": 2, "reduction_factor": 3}
STARTUP_TRIALS = 5
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

    folder.mkdir(parents=True, exist_ok=True)
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
    seconds = time.perf_counter() - started
    print(f"  {name}: {seconds:.0f} s", flush=True)
    records = []
    for path in (work / "runs" / name).glob("*/trial.json"):
        history = path.parent / "history.csv"
        curve = [float(row["val_accuracy"]) for row in csv.DictReader(history.open())] if history.exists() else []
        records.append({**json.loads(path.read_text()), "curve": curve, "sweep_seconds": seconds})
    return sorted(records, key=lambda r: datetime.fromisoformat(r["finished_at"]))


def rank_correlations(grid: list[dict]) -> list[float]:
    """Spearman's rank correlation of each epoch's validation accuracy with the last's, over the
    grid's trials: how early an epoch tells the good trials from the bad."""
    from scipy.stats import spearmanr

    curves = [r["curve"] for r in grid if r["status"] == "completed" and len(r["curve"]) == EPOCHS]
    return [float(spearmanr([c[k] for c in curves], [c[-1] for c in curves])[0]) for k in range(EPOCHS)]


def epochs_to_match(records: list[dict], target: float) -> int | None:
    """Epochs spent, in the order trials finished, up to the first completed trial at ``target``."""
    spent = 0
    for record in records:
        spent += int(record.get("epochs") or 0)
        if record["status"] == "completed" and record["val_accuracy"] >= target:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeat-seeds", type=int, default=5,
                        help="training seeds the grid's best point is trained with, to show its spread")
    parser.add_argument("--budget", type=int, default=None, help="trials per search (default: the grid's count)")
    parser.add_argument("--work", type=Path, default=None, help="run here and keep the runs (default: a temporary folder); "
                        "run again, the sweeps keep their finished trials")
    args = parser.parse_args()
    if args.repeat_seeds < 2:
        parser.error("--repeat-seeds: give at least 2 (a spread needs two seeds)")
    mirror = Path(os.environ.get("MNISTFLOW_MIRROR", ""))
    if not (mirror / "train-images-idx3-ubyte.gz").exists():
        sys.exit("set MNISTFLOW_MIRROR to a directory holding the real MNIST *-ubyte.gz files")
    from harness.real_parts import PrefectServer

    with tempfile.TemporaryDirectory(prefix="mnistflow-search-bench-") as tmp:
        work = args.work.resolve() if args.work else Path(tmp)
        checksums = subset(mirror, work / "mirror", args.train_images)
        base = yaml.safe_load((REPO / "presets/cnn-fast.yaml").read_text())
        base["data"] = {**base["data"], "dataset": "custom", "mirrors": [str(work / "mirror")], "checksums": checksums}
        base["train"] = {**base["train"], "threads": 1, "stages": [{**base["train"]["stages"][0], "epochs": EPOCHS}]}
        (work / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
        (work / "home").mkdir(exist_ok=True)
        server = PrefectServer(work / "home").start()
        try:
            env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("PREFECT_")},
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
            grid = sweep(work, "grid", {"grid": GRID}, env)
            trials = len(grid)
            repeats = sweep(work, "grid-best-over-seeds", {"grid": {k: [v] for k, v in top_of(grid)["overrides"].items()},
                                                            "seeds": args.repeat_seeds}, env)
            searches = {seed: sweep(work, f"search-{seed}", {"search": {
                "sampler": "tpe", "trials": args.budget or trials, "seed": seed, "params": SPACE,
                "startup_trials": STARTUP_TRIALS, "pruner": PRUNER}}, env)
                for seed in range(args.seeds)}
        finally:
            server.stop()
    report(grid, repeats, searches, args.train_images)


def top_of(records: list[dict]) -> dict:
    return max((r for r in records if r["status"] == "completed"), key=lambda r: r["val_accuracy"])


def report(grid: list[dict], repeats: list[dict], searches: dict[int, list[dict]], images: int) -> None:
    grid_epochs = sum(int(r["epochs"]) for r in grid)
    top = top_of(grid)
    again = [r["val_accuracy"] for r in repeats if r["status"] == "completed"]
    typical = statistics.mean(again)
    print(f"\ncnn-fast network, {images} MNIST training images, {EPOCHS} epochs at most, five parameters")
    print(f"grid: {len(grid)} trials, {grid_epochs} epochs, best validation accuracy {100 * top['val_accuracy']:.2f}% "
          f"(test {100 * top['test_accuracy']:.2f}%, {top['train_seconds']:.0f} s of training)")
    print("rank correlation of each epoch's validation accuracy with the last's, over the grid: "
          + ", ".join(f"epoch {k + 1} {rho:.2f}" for k, rho in enumerate(rank_correlations(grid))))
    print(f"the grid's best point trained with {len(again)} seeds (0 is the grid's): validation "
          f"{100 * typical:.2f}% +- {100 * statistics.stdev(again):.2f} (min {100 * min(again):.2f}%, "
          f"max {100 * max(again):.2f}%)")
    print(f"searches: TPE, {STARTUP_TRIALS} random trials first, pruner {PRUNER}")
    shares, typical_shares = [], []
    for seed, records in searches.items():
        spent = epochs_to_match(records, top["val_accuracy"])
        reached = epochs_to_match(records, typical)
        typical_shares.append(reached / grid_epochs if reached is not None else float("inf"))
        done = [r for r in records if r["status"] == "completed"]
        best = max(done, key=lambda r: r["val_accuracy"])
        pruned = sum(r["status"] == "pruned" for r in records)
        share = (spent if spent is not None else sum(int(r.get("epochs") or 0) for r in records)) / grid_epochs
        shares.append(share if spent is not None else float("inf"))
        print(f"search seed {seed}: {len(records)} trials ({pruned} pruned), "
              + (f"matched the grid's best after {spent} epochs ({share:.2f} of the grid's)" if spent is not None
                 else f"never matched the grid's best in its budget ({share:.2f} of the grid's epochs spent)")
              + f"; its best: validation {100 * best['val_accuracy']:.2f}%, test {100 * best['test_accuracy']:.2f}%, "
              f"{best['train_seconds']:.0f} s of training; the search took {records[0]['sweep_seconds']:.0f} s; "
              f"it reached the best point's mean over seeds after "
              + (f"{reached} epochs ({reached / grid_epochs:.2f})" if reached is not None else "never"))
    if not shares:
        return
    mean = statistics.mean(shares)
    print(f"mean share of the grid's epochs to match its best trial: {mean:.2f} "
          f"(bar: <= {BAR:.2f}: {'met' if mean <= BAR else 'NOT met'}); "
          f"to reach its best point's mean over seeds: {statistics.mean(typical_shares):.2f}")


if __name__ == "__main__":
    main()
