"""Entry-point plumbing: a user's mistake is one line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import MnistflowError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def run_main(main: Callable[[], object]) -> None:
    try:
        main()
    except MnistflowError as exc:
        print(f"mnistflow: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("mnistflow: interrupted; run again to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
