"""Prefect tasks: one module per pipeline step, each a thin wrapper of a mnistflow function.

Task results are paths and plain data. Nothing is persisted by Prefect
(``persist_result=False``): DVC versions the outputs, and a tensor or a model
must never be pickled into Prefect's result store.
"""

import logging
from typing import Any, Callable

from prefect.cache_policies import NO_CACHE

from mnistflow.errors import MnistflowError

# Shared by every task: no Prefect-side caching or result persistence.
TASK_DEFAULTS = {"cache_policy": NO_CACHE, "persist_result": False}


def exception_chain(exc: BaseException | None, limit: int = 20) -> list[BaseException]:
    """``exc`` and what caused it (or was being handled when it was raised), outermost first."""
    chain = []
    while exc is not None and len(chain) < limit:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def api_unreachable(exc: BaseException) -> bool:
    """Did ``exc`` (or what caused it) come from a Prefect API that stopped answering?"""
    import httpx

    return any(isinstance(e, httpx.TransportError) or "Failed to reach API" in str(e) for e in exception_chain(exc))


def best_effort(what: str, call: Callable[[], Any]) -> Any:
    """``call()`` (an artifact for the UI), or None with a warning when the API is gone:
    what a run shows in the UI never decides whether its model and metrics are written."""
    try:
        return call()
    except Exception as exc:
        if not api_unreachable(exc):
            raise
        logging.getLogger("mnistflow").warning("%s: not recorded, the Prefect API does not answer (%s)", what,
                                               str(exc)[:160])
        return None


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry transient faults; a user's mistake would only fail again, and so would a
    retry that needs the API which just stopped answering."""
    try:
        state.result()
    except MnistflowError as exc:
        return exc.retryable
    except Exception as exc:  # noqa: BLE001 - any other failure: retried, unless the API itself is gone
        return not api_unreachable(exc)
    return False
