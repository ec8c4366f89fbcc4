"""Speed against the original recipe, and what the orchestration costs on top.

    python -m bench.speed [--skip-best] [--skip-orchestration] [--fashion DIR]

Runs, in one command and on the same data (the real MNIST through
MNISTFLOW_MIRROR): the baseline (bench/baseline.py), our default recipe, the
presets (MLP: fast, best; CNN: cnn-fast, cnn-best), then end to end: the
original script's whole process against the flow's (cold, starting the local
Prefect server, and warm), a full `dvc repro` from a clean state and a no-op
one. With --fashion, every preset again on Fashion-MNIST from that
directory. Prints figures and ratios; asserts nothing (times on a shared
machine are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def child(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run([PY, "-m", *args], cwd=cwd, env=env or os.environ.copy(),
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result


def table(rows: list[dict], base: dict) -> None:
    print(f"\n{'run':34} {'train s':>8} {'samples/s':>11} {'peak RSS MB':>11} {'val acc':>8} "
          f"{'test acc':>8} {'speed-up':>9}")
    for r in rows:
        print(f"{r['name']:34} {r['train_seconds']:8.2f} {r['samples_per_second']:11,.0f} "
              f"{r['peak_rss_mb']:11.0f} {100 * r['val_accuracy']:7.2f}% {100 * r['test_accuracy']:7.2f}% "
              f"{base['train_seconds'] / r['train_seconds']:8.1f}x")


FASHION_PRESETS = {"fashion-cnn-fast": 0.91, "fashion-cnn-best": 0.94}


def fashion(presets: list[str], mirror: Path, scratch: Path, env: dict[str, str]) -> None:
    """Each MNIST preset, unchanged but for the dataset, on Fashion-MNIST; then the
    presets made for it, with their bars."""
    import yaml

    work = scratch / "fashion"
    work.mkdir()
    rows = []
    for preset in presets + [p for p in FASHION_PRESETS if "best" not in p or "cnn-best" in presets]:
        raw = yaml.safe_load((REPO / "presets" / f"{preset}.yaml").read_text())
        raw["data"] = {**raw["data"], "dataset": "fashion-mnist"}
        path = work / f"{preset}.yaml"
        path.write_text(yaml.safe_dump(raw))
        rows.append(child(["bench.ours", str(path), f"fashion-mnist: {preset}", str(work)], work,
                          {**env, "MNISTFLOW_MIRROR": str(mirror)}))
    print("\nFashion-MNIST (bars: " + ", ".join(f"{name} >= {100 * bar:g}%" for name, bar in FASHION_PRESETS.items())
          + " test)")
    for r in rows:
        preset = r["name"].split(": ", 1)[1]
        bar = FASHION_PRESETS.get(preset)
        verdict = "" if bar is None else f"  (bar >= {100 * bar:.0f}%: {'met' if r['test_accuracy'] >= bar else 'NOT met'})"
        print(f"  {r['name']:34} test {100 * r['test_accuracy']:6.2f}%  val {100 * r['val_accuracy']:6.2f}%  "
              f"in {r['train_seconds']:6.1f}s of training{verdict}")


def flow_process(repo: Path, env: dict[str, str], api: str) -> dict:
    """One `python -m flows.training` as a user runs it: its whole wall time, the
    training time it reports, and how long the process outlived its flow run."""
    from datetime import datetime

    wall, result = timed([PY, "-m", "flows.training"], repo, env)
    ended = time.time()
    train = float(result.stdout.split("% (")[1].split("s of training")[0])
    with urllib.request.urlopen(urllib.request.Request(
            f"{api}/flow_runs/filter", data=json.dumps({"sort": "START_TIME_DESC", "limit": 1}).encode(),
            headers={"Content-Type": "application/json"}, method="POST"), timeout=30) as response:
        run = json.loads(response.read())[0]
    finished = datetime.fromisoformat(run["end_time"].replace("Z", "+00:00")).timestamp()
    return {"wall": wall, "train": train, "exit": ended - finished}


def orchestration(scratch: Path, env: dict[str, str], train_seconds: float, baseline_dir: Path) -> None:
    """End to end, as a user meets it: the original script's whole process against
    the flow's whole process (cold: the first run after set-up starts the local
    Prefect server; warm: the server is up), then `dvc repro` against training alone."""
    from harness.real_parts import copy_repo, free_port  # the same real parts as the tests

    repo = copy_repo(scratch / "repo")
    dvc = str(Path(PY).with_name("dvc"))
    full, _ = timed([dvc, "repro"], repo, env)
    noop, _ = timed([dvc, "repro"], repo, env)
    original, _ = timed([PY, "-m", "bench.baseline", str(baseline_dir)], scratch, env)

    port = free_port()
    flow_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    flow_env.update(PREFECT_HOME=str(scratch / "prefect-home"), PREFECT_SERVER_API_PORT=str(port))
    api = f"http://127.0.0.1:{port}/api"
    # What `make setup` does for PREFECT_HOME: create Prefect's database, so that the
    # cold run below is "the first run after set-up" (its server starts, migrates nothing).
    database, _ = timed([str(Path(PY).with_name("prefect")), "server", "database", "upgrade", "-y"], repo, flow_env)
    runs = {}
    try:
        for name, fresh in (("cold", True), ("warm", True), ("again", False)):
            if fresh:  # a new run trains from scratch; "again" resumes the finished one, as `make run` twice does
                shutil.rmtree(repo / "outputs", ignore_errors=True)
            runs[name] = flow_process(repo, flow_env, api)
        status = subprocess.run([dvc, "status"], cwd=repo, env=env, capture_output=True, text=True).stdout
    finally:
        subprocess.run([str(Path(PY).with_name("prefect")), "server", "stop"], env=flow_env, capture_output=True)

    cold, warm, again = runs["cold"], runs["warm"], runs["again"]
    print(f"\nend to end, whole processes (training alone took {train_seconds:.2f}s in-process)")
    print(f"  original script                  {original:7.2f}s wall")
    print(f"  set-up: Prefect's database       {database:7.2f}s (make setup; without it, the first run's "
          "server start runs these migrations itself)")
    print(f"  python -m flows.training, cold   {cold['wall']:7.2f}s wall (+{cold['wall'] - cold['train']:.2f}s "
          f"beyond the {cold['train']:.2f}s of training it reports; bar +15s); {original / cold['wall']:.1f}x "
          "faster than the original script")
    print(f"  python -m flows.training, warm   {warm['wall']:7.2f}s wall (+{warm['wall'] - warm['train']:.2f}s; "
          f"bar +5s); {original / warm['wall']:.1f}x faster than the original script")
    print(f"  ... run again (`make run` twice: resumes, trains nothing) {again['wall']:.2f}s wall (bar: 0s of "
          "training + 5s)")
    print(f"  process end after its flow run ended: {cold['exit']:.2f}s cold, {warm['exit']:.2f}s warm, "
          f"{again['exit']:.2f}s again")
    print(f"  dvc repro from a clean state     {full:7.2f}s wall  (+{full - train_seconds:.2f}s on top of "
          "training; bar +8s)")
    print(f"  dvc repro, nothing changed       {noop:7.2f}s wall  (bar: 2s)")
    print(f"  dvc status after the flow runs:  {status.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-best", action="store_true", help="skip the ~minutes-long best preset")
    parser.add_argument("--skip-orchestration", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the baseline and of ours (best kept)")
    parser.add_argument("--fashion", type=Path, metavar="DIR",
                        help="also run every preset on Fashion-MNIST from this directory (its four *-ubyte.gz)")
    args = parser.parse_args()
    if not os.environ.get("MNISTFLOW_MIRROR"):
        sys.exit("set MNISTFLOW_MIRROR to a directory (or URL) holding the real MNIST *-ubyte.gz files")
    env = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="mnistflow-bench-") as tmp:
        scratch = Path(tmp)
        work = scratch / "ours"
        work.mkdir()
        # Baseline and ours alternate, --repeat times each; the fastest run of each
        # is kept (as timeit does): noise on a shared machine only ever adds time.
        ours_runs, base_runs = [], []
        for _ in range(args.repeat):
            ours_runs.append(child(["bench.ours", str(REPO / "params.yaml"), "ours: default recipe", str(work)],
                                   work, env))
            base_runs.append(child(["bench.baseline", str(work / "data" / "mnist")], work, env))
        for runs in (base_runs, ours_runs):
            seconds = ", ".join(f"{r['train_seconds']:.2f}" for r in runs)
            print(f"{runs[0]['name']}: training seconds per run {seconds}")
        base = min(base_runs, key=lambda r: r["train_seconds"])
        rows = [base, min(ours_runs, key=lambda r: r["train_seconds"])]
        presets = ["fast", "cnn-fast"] + ([] if args.skip_best else ["best", "cnn-best"])
        for preset in presets:
            rows.append(child(["bench.ours", str(REPO / "presets" / f"{preset}.yaml"),
                               f"ours: {preset} preset", str(work)], work, env))
        table(rows, base)
        ours = rows[1]
        print(f"\ndefault recipe: {base['train_seconds'] / ours['train_seconds']:.1f}x faster than the "
              f"baseline (bar: 10x); accuracy difference val "
              f"{100 * (ours['val_accuracy'] - base['val_accuracy']):+.2f} / test "
              f"{100 * (ours['test_accuracy'] - base['test_accuracy']):+.2f} points (bar: within 0.5)")
        # One seed here; the bars are for the mean over seeds (python -m bench.accuracy).
        bars = {"ours: cnn-fast preset": (0.99, 0.10), "ours: cnn-best preset": (0.995, 0.5)}
        for r in rows[2:]:
            line = f"{r['name']}: test {100 * r['test_accuracy']:.2f}% in {r['train_seconds']:.1f}s of training"
            if r["name"] in bars:
                accuracy, share = bars[r["name"]]
                line += (f" = {r['train_seconds'] / base['train_seconds']:.2f}x the baseline's "
                         f"(bars: >= {100 * accuracy:.1f}% in <= {share:g}x)")
            print(line)
        if args.fashion:
            fashion(presets, args.fashion.resolve(), scratch, env)
        if not args.skip_orchestration:
            orchestration(scratch, env, ours["train_seconds"], work / "data" / "mnist")


if __name__ == "__main__":
    main()
