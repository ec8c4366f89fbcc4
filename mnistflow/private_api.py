"""The off switches of every use of another library's private API, and what each buys.

None of them changes what a step writes, only how fast it gets there or whether
it is guarded, so this file is no stage's code (mnistflow/code.py's ``HARNESS``):
a new switch edits nothing a model's identity hashes. The shortcuts themselves
live with their users (the DVC locks in lifecycle/workspace.py, the header
deadline in serving/slow_clients.py); the exit and the exporter's preload here.

Each one was measured (docs/performance.md, docs/operations.md) and is kept
for that reason alone; tests/{unit,integration}/test_private_api.py fails loudly the day a name
disappears from the library, and names the switch that turns the shortcut off.

``MNISTFLOW_NO_PRIVATE_API`` turns them off: a comma-separated list of the
names below, or ``all``.

- ``fast-exit``: ``atexit._run_exitfuncs`` then ``os._exit``: a finished
  command skips the interpreter's teardown of torch, Prefect, DVC and Dask
  (1.3-1.5 s of a flow process on 2 cores). Off: Python's normal exit.
- ``exporter-preload``: torch's ONNX exporter's internal modules
  (``EXPORTER_MODULES``), imported on a thread ahead of the export (about half
  a second of the first export). Off: the first export pays for them itself.
- ``dvc-locks``: DVC's internal ``dvc.repo.lock_repo`` and ``dvc.rwlock.rwlock``,
  so that a flow run writing the DVC workspace excludes `dvc repro` the way
  DVC's own stages exclude each other. Off: the run takes only its Prefect
  concurrency slot, and says so.
- ``header-deadline``: uvicorn's h11 protocol's internals (serving/slow_clients.py),
  so that the service closes a connection that has not sent a whole request's
  headers within 10 s (uvicorn has no such limit: slowloris). Off: uvicorn's own
  protocol, and a slow client holds its connection.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys

SWITCH_ENV = "MNISTFLOW_NO_PRIVATE_API"
NAMES = ("fast-exit", "exporter-preload", "dvc-locks", "header-deadline")

# What the first export in a process imports, heaviest first.
EXPORTER_MODULES = ("onnxruntime", "onnxscript.optimizer", "onnxscript.function_libs.torch_lib.ops",
                    "torch.onnx._internal.exporter._core", "torch._functorch.aot_autograd",
                    "torch._export.non_strict_utils", "torch._export.passes")


def enabled(name: str, env: dict[str, str] | None = None) -> bool:
    if name not in NAMES:
        raise KeyError(name)
    off = {part.strip() for part in (os.environ if env is None else env).get(SWITCH_ENV, "").split(",")}
    return not ({"all", name} & off)


def exit_without_finalizing(code: int) -> None:
    """Run every exit handler (logging's flush, multiprocessing's children, ...), then
    leave without tearing down modules. By then Prefect's log and event workers have
    drained (they hook the earlier threading shutdown), and every file the pipeline
    writes is written and renamed."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def preload_exporter() -> None:
    """Import the exporter's stack (never a trial export: tracing is not thread-safe)."""
    if enabled("exporter-preload"):
        for module in EXPORTER_MODULES:
            importlib.import_module(module)
