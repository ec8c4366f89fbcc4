"""Entry-point plumbing: a user's mistake is one line on stderr and a non-zero exit,
and the process ends as soon as its work is done."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Callable

from .errors import MnistflowError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def _exit_without_finalizing(code: list[int]) -> None:
    """Run every other exit handler, then leave without tearing down modules.

    By the time atexit handlers run, Prefect's log and event workers have
    drained (they hook the earlier threading shutdown). What is left is the
    interpreter's own finalization: freeing every module of torch, Prefect, DVC
    and Dask one by one, 1.3-1.5 s of a flow process's wall time on a 2-core
    machine with nothing left to save (every file the pipeline writes is
    written and renamed before this point).
    """
    atexit.unregister(_exit_without_finalizing)
    atexit._run_exitfuncs()  # logging's flush, multiprocessing's children, ...
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code[0])


def run_main(main: Callable[[], object]) -> None:
    code = [1]  # an unexpected exception exits 1 with its traceback, as Python does
    if "pytest" not in sys.modules:  # never inside a test runner, whose own exit code must stand
        atexit.register(_exit_without_finalizing, code)
    try:
        main()
        code[0] = 0
    except MnistflowError as exc:
        print(f"mnistflow: error: {exc}", file=sys.stderr)
        code[0] = exc.exit_code
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("mnistflow: interrupted; run again to resume from the last checkpoint", file=sys.stderr)
        code[0] = 130
        sys.exit(130)
    except SystemExit as exc:  # argparse's usage errors and --help
        code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
