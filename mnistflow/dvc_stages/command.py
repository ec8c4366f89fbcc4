"""The command line every DVC stage shares: its arguments, the run folder's check,
the params, and the exit (a user's mistake is one line). Part of the code's
harness (mnistflow/code.py): where a stage reads and writes is named by dvc.yaml's
``cmd``, which DVC hashes itself, so nothing here changes a byte a stage writes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..entry import run_main, setup_logging
from ..params import Params, load_params
from ..paths import DEFAULT_RUN_DIR, RunPaths, roots

StageRun = Callable[[Params, Path, RunPaths], None]


def folders_writable(params: Params, data_root: Path, paths: RunPaths) -> None:
    """The run folder and the data root can be written: before a stage's work."""
    from ..preflight import check_data_root, writable

    writable(paths.dir)
    check_data_root(params.data, data_root)


def main(name: str, run: StageRun, description: str | None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m mnistflow.dvc_stages.{name}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data-root", type=Path, default=None,
                        help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="the run's folder (default: outputs/)")
    args = parser.parse_args()
    setup_logging()

    def checked_run() -> None:
        from ..preflight import check_run_folder

        params, where = load_params(args.params), roots(data_root=args.data_root)
        check_run_folder(args.run_dir, where.data_root, where.registry)
        run(params, where.data_root, RunPaths(args.run_dir))

    run_main(checked_run)
