"""Prefect tasks: one module per pipeline step, each a thin wrapper of a mnistflow function.

Task results are paths and plain data. Nothing is persisted by Prefect
(``persist_result=False``): DVC versions the outputs, and a tensor or a model
must never be pickled into Prefect's result store.
"""

from prefect.cache_policies import NO_CACHE

from mnistflow.errors import MnistflowError

# Shared by every task: no Prefect-side caching or result persistence.
TASK_DEFAULTS = {"cache_policy": NO_CACHE, "persist_result": False}


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry transient faults; a user's mistake would only fail again."""
    try:
        state.result()
    except MnistflowError as exc:
        return exc.retryable
    except Exception:
        return True
    return False
