"""The private names mnistflow leans on still exist, and each shortcut's off switch works.

A failure here means a library changed under a measured shortcut: turn it off
with MNISTFLOW_NO_PRIVATE_API=<name> (mnistflow/private_api.py) until it is mended.

Here: the cases that start processes or servers; the others are in tests/unit/test_private_api.py.
"""

import subprocess
import sys

import pytest

from mnistflow import private_api
from tests.helpers import REPO, clean_env


@pytest.mark.parametrize("switch", ["", "fast-exit"])
def test_a_command_exits_with_its_code_with_the_fast_exit_on_or_off(switch):
    code = ("from mnistflow.entry import run_main\n"
            "from mnistflow.errors import MnistflowError\n"
            "def work():\n    raise MnistflowError('bad value')\n"
            "run_main(work)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env=clean_env(**{private_api.SWITCH_ENV: switch}), timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "mnistflow: error: bad value"
