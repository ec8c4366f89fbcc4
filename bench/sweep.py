"""How a sweep scales: the same trials one after another, then on W Dask workers.

    python -m bench.sweep [--trials 4] [--workers 2]

On the real MNIST (MNISTFLOW_MIRROR), with the default recipe, in a scratch
folder and against a Prefect server started for the purpose: the sweep runs
first on one worker (the trials one after another), then on W workers, each
as a whole `python -m flows.sweep` process. For each it prints the time the
trials took (first start to last finish, from their trial.json: the bar's
figure), the whole process's wall time (Python, Prefect and the cluster coming
up and going down included), the speed-up and scaling efficiency (speed-up /
W) of both, and each trial's overhead beyond its training (its span minus its
training seconds). Asserts nothing: times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def sweep_once(work: Path, spec: Path, workers: int, runs: str, env: dict[str, str]) -> dict:
    from harness.real_parts import run

    started = time.perf_counter()
    result = run([sys.executable, "-m", "flows.sweep", str(spec), "--workers", str(workers), "--runs-root", runs],
                 work, env)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep on {workers} worker(s) failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in (work / runs).glob("*/t-*/trial.json")]
    spans = [(datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
             for r in records]
    overheads = [span - r["train_seconds"] for span, r in zip(spans, records)]
    makespan = (max(datetime.fromisoformat(r["finished_at"]) for r in records)
                - min(datetime.fromisoformat(r["started_at"]) for r in records)).total_seconds()
    return {"workers": workers, "wall": wall, "trials": makespan, "train": sum(r["train_seconds"] for r in records),
            "overhead_median": statistics.median(overheads), "overhead_max": max(overheads),
            "val": [r["val_accuracy"] for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("MNISTFLOW_MIRROR"):
        sys.exit("set MNISTFLOW_MIRROR to a directory (or URL) holding the real MNIST *-ubyte.gz files")
    from harness.real_parts import PrefectServer

    with tempfile.TemporaryDirectory(prefix="mnistflow-sweep-bench-") as tmp:
        work = Path(tmp)
        shutil.copy(REPO / "params.yaml", work / "params.yaml")
        spec = work / "bench.yaml"
        # The default recipe under different seeds: every trial costs the same.
        spec.write_text(yaml.safe_dump({"name": "bench", "base": "params.yaml",
                                        "grid": {"train.seed": list(range(args.trials))},
                                        "select": "val_accuracy", "workers": args.workers}))
        (work / "home").mkdir()
        server = PrefectServer(work / "home").start()
        try:
            env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("PREFECT_")},
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
            sweep_once(work, spec, 1, "warm-up", env)  # the data downloaded and verified once, imports cached
            serial = sweep_once(work, spec, 1, "serial", env)
            parallel = sweep_once(work, spec, args.workers, "parallel", env)
        finally:
            server.stop()
    print(f"{args.trials} trials of the default recipe:")
    for r in (serial, parallel):
        print(f"  {r['workers']} worker(s): trials {r['trials']:6.2f}s (first start to last finish), whole process "
              f"{r['wall']:6.2f}s; {r['train']:6.2f}s of training in all; per-trial overhead beyond training: "
              f"median {r['overhead_median']:.2f}s, max {r['overhead_max']:.2f}s")
    for what, key in (("the trials", "trials"), ("the whole process", "wall")):
        speedup = serial[key] / parallel[key]
        print(f"speed-up of {what} on {args.workers} workers: {speedup:.2f}x, scaling efficiency "
              f"{speedup / args.workers:.0%}" + (" (bar: 1.6x)" if key == "trials" else ""))
    print(f"per-trial overhead beyond training, one after another: median {serial['overhead_median']:.2f}s "
          "(bar: 1.5s)")
    print(f"validation accuracy, every trial: {', '.join(f'{100 * v:.2f}%' for v in serial['val'] + parallel['val'])}")


if __name__ == "__main__":
    main()
