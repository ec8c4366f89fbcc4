"""Params and sweep files: bounded work to read them, and bounds on what they ask for (issue 24, class 2).

Each hostile file here once hung, grew past a gigabyte, or ended in a traceback.
Every one must now be refused in one line, in well under a second, naming the
file and the field.

Here: the cases that start processes or servers; the others are in tests/unit/test_params_bounds.py.
"""

from __future__ import annotations

import sys

from tests.helpers import LAUGHS, run


def test_the_command_line_says_it_in_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(f"{LAUGHS}\ndevice: *i\n")
    result = run([sys.executable, "-m", "mnistflow.params", str(path)], tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"mnistflow: error: {path}: expands to over 100,000 values (aliases of aliases?); a params file is a few dozen"]
