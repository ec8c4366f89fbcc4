"""How a command ends: a user's mistake is one line on stderr and a non-zero exit,
and the process ends as soon as its work is done (``private_api``'s fast exit).
Every ``python -m`` entry point runs its work through ``run_main``."""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
from typing import Callable

from .errors import MnistflowError
from .private_api import enabled, exit_without_finalizing


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def _exit_without_finalizing(code: list[int]) -> None:
    atexit.unregister(_exit_without_finalizing)
    exit_without_finalizing(code[0])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so a run stops as it does on Ctrl-C:
    its last checkpoint kept, and one line saying so."""


# Set when SIGTERM arrived: what it raised may be swallowed on the way out (by a
# library reporting the stop to a server that is gone), and the exit must still say so.
terminated = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    terminated.set()
    raise Terminated()


def _on_sigterm() -> None:
    # Only where nobody else handles it, and only from the main thread (Python's rule).
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def run_main(main: Callable[[], object]) -> None:
    code = [1]  # an unexpected exception exits 1 with its traceback, as Python does
    # Never inside a test runner, whose own exit code must stand.
    if "pytest" not in sys.modules and enabled("fast-exit"):
        atexit.register(_exit_without_finalizing, code)
    _on_sigterm()
    try:
        main()
        code[0] = 0
    except MnistflowError as exc:
        print(f"mnistflow: error: {exc}", file=sys.stderr)
        code[0] = exc.exit_code
        sys.exit(exc.exit_code)
    except Terminated:
        print("mnistflow: terminated (SIGTERM); run again to resume from the last checkpoint", file=sys.stderr)
        code[0] = 143
        sys.exit(143)
    except KeyboardInterrupt:
        print("mnistflow: interrupted; run again to resume from the last checkpoint", file=sys.stderr)
        code[0] = 130
        sys.exit(130)
    except SystemExit as exc:  # argparse's usage errors and --help
        code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
