"""A preset's accuracy as a distribution over seeds, and its training time against the original recipe's.

    python -m bench.accuracy PRESET [--seeds N] [--first-seed K] [--no-baseline] [--dataset fashion-mnist]

PRESET is a name under presets/ (``cnn-fast``) or a params file. It trains the
preset N times (default 5) one after another in this process, with
``train.seed`` 0..N-1 (K..K+N-1 with --first-seed K, so that a long preset's
seeds can be run in parts): each seed moves the initialisation, the batch
order and the augmentation; the data split (``data.seed``) stays. The data comes through
the pipeline's own mirror settings (MNISTFLOW_MIRROR, MNISTFLOW_MIRROR_ROOT or
the preset's data.mirrors), is verified once, and is on the device for every
seed; each seed's time is its epochs alone, as ``bench.ours`` times them.
Unless --no-baseline, the original recipe (bench/baseline.py) is timed first,
in its own process on the same machine (on MNIST, whatever the preset's
dataset), and every time is also given as a ratio of its training time.

Prints one line per seed, then the mean, standard deviation (n-1), minimum and
maximum of test accuracy and of training time, and a last JSON line of it all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def preset_params(name: str, dataset: str | None):
    from mnistflow.params import load_params

    path = Path(name) if Path(name).suffix in (".yaml", ".yml") else REPO / "presets" / f"{name}.yaml"
    params = load_params(path)
    if dataset:
        params = params.model_copy(update={"data": params.data.model_copy(update={"dataset": dataset})})
    return params


def with_seed(params, seed: int):
    return params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})


def baseline_seconds(raw_dir: Path) -> float:
    """The original recipe's training time, in its own process (it imports torchvision)."""
    result = subprocess.run([sys.executable, "-m", "bench.baseline", str(raw_dir)], cwd=REPO, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["train_seconds"]


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def over_seeds(params, files, work: Path, seeds: int, base: float | None = None, first: int = 0) -> list[dict]:
    """Train ``params`` with train.seed first..first+seeds-1, one run folder each under ``work``;
    prints a line per seed and returns its row."""
    from bench.ours import time_training
    from mnistflow.evaluate import evaluate
    from mnistflow.paths import RunPaths

    rows = []
    for seed in range(first, first + seeds):
        run = with_seed(params, seed)
        paths = RunPaths(work / f"seed-{seed}")
        seconds, session = time_training(run, files, paths)
        metrics = evaluate(run, session.data, files, session.runtime, paths)
        rows.append({"seed": seed, "train_seconds": seconds, "val_accuracy": metrics["val"]["accuracy"],
                     "test_accuracy": metrics["test"]["accuracy"]})
        ratio = f"  {seconds / base:.3f}x" if base else ""
        print(f"seed {seed}: test {100 * rows[-1]['test_accuracy']:.2f}%  val "
              f"{100 * rows[-1]['val_accuracy']:.2f}%  {seconds:.2f} s{ratio}", flush=True)
    return rows


def report(name: str, params, rows: list[dict], base: float | None) -> dict:
    """The distribution's line, and its JSON line (returned too)."""
    accuracy = summary([100 * r["test_accuracy"] for r in rows])
    seconds = summary([r["train_seconds"] for r in rows])
    print(f"{name} over {len(rows)} seeds: test accuracy {accuracy['mean']:.2f}% ± {accuracy['std']:.2f} "
          f"(min {accuracy['min']:.2f}%, max {accuracy['max']:.2f}%); training {seconds['mean']:.2f} s ± "
          f"{seconds['std']:.2f} (min {seconds['min']:.2f}, max {seconds['max']:.2f})"
          + (f" = {seconds['mean'] / base:.3f}x the original recipe's {base:.2f} s" if base else ""))
    record = {"preset": name, "dataset": params.data.dataset, "seeds": rows, "test_accuracy": accuracy,
              "train_seconds": seconds, "baseline_seconds": base, "ratio": seconds["mean"] / base if base else None,
              "device": params.device}
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="the first train.seed (default 0)")
    parser.add_argument("--no-baseline", action="store_true", help="skip timing the original recipe")
    parser.add_argument("--dataset", default=None, help="train the preset on another named dataset")
    args = parser.parse_args()

    from mnistflow.download import download
    from mnistflow.params import DataParams

    params = preset_params(args.preset, args.dataset)
    with tempfile.TemporaryDirectory(prefix="mnistflow-accuracy-") as scratch:
        work = Path(scratch)
        files = download(params.data, work / "data")
        base = None
        if not args.no_baseline:  # the recipe is MNIST's, whatever dataset the preset trains on
            mnist = files if params.data.dataset == "mnist" else download(DataParams(), work / "data")
            base = baseline_seconds(Path(mnist.directory))
            print(f"baseline (the original recipe): {base:.2f} s of training", flush=True)
        rows = over_seeds(params, files, work, args.seeds, base, args.first_seed)
    report(args.preset, params, rows, base)


if __name__ == "__main__":
    main()
