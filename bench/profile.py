"""Where one epoch of a preset's training spends its time, op by op (torch.profiler).

    python -m bench.profile PRESET [--rows 12]

PRESET is a name under presets/ or a params file; its first stage is cut to one
epoch and trained (with its validation pass) under ``torch.profiler``, the
data through the pipeline's own mirror settings. Prints the ops by self CPU
time (CUDA time too on a GPU), then each op's share of the epoch.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.accuracy import preset_params
from bench.ours import time_training
from mnistflow.download import download
from mnistflow.params import validate
from mnistflow.paths import RunPaths


def one_epoch(params):
    raw = params.model_dump(mode="json")
    first = {**raw["train"]["stages"][0], "epochs": 1}
    return validate({**raw, "train": {**raw["train"], "stages": [first]}})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset")
    parser.add_argument("--rows", type=int, default=12)
    args = parser.parse_args()
    params = one_epoch(preset_params(args.preset, None))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory(prefix="mnistflow-profile-") as scratch:
        files = download(params.data, Path(scratch) / "data")
        with profile(activities=activities) as prof:
            seconds, _ = time_training(params, files, RunPaths(Path(scratch) / "run"))
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in averages)
    print(f"one epoch of {args.preset}: {seconds:.2f} s under the profiler; by self CPU time:")
    for event in sorted(averages, key=lambda e: -e.self_cpu_time_total)[:args.rows]:
        print(f"  {event.key:<40} {100 * event.self_cpu_time_total / total:5.1f}%")


if __name__ == "__main__":
    main()
