"""How a command ends when SIGTERM lands inside a library that wraps it: as a SIGTERM,
in one line, with no traceback. (CI caught the race: the signal arrived while pydantic
serialised the run's context for a Dask worker, and the sweep died with a traceback of a
PydanticSerializationError whose cause was Prefect's TerminationSignal.)"""

from __future__ import annotations

import logging
import signal

import pytest
from prefect.exceptions import TerminationSignal
from pydantic import BaseModel, model_serializer

from flows.cli import _HideUserErrorTracebacks, stopped_by_signal
from mnistflow.entry import Terminated, terminated


class _Context(BaseModel):
    """Serialised as Prefect serialises a run's settings for Dask, when SIGTERM arrives."""

    value: int = 1

    @model_serializer(mode="wrap")
    def _serialise(self, handler):
        raise TerminationSignal(signal.SIGTERM)


def wrapped_sigterm() -> BaseException:
    try:
        _Context().model_dump()
    except Exception as exc:  # noqa: BLE001 (pydantic's own error type, whatever it is)
        return exc
    raise AssertionError("the serialiser did not raise")


@pytest.fixture(autouse=True)
def _no_sigterm_left():
    yield
    terminated.clear()


def test_a_sigterm_wrapped_by_pydantic_ends_the_command_as_a_sigterm():
    exc = wrapped_sigterm()
    assert not isinstance(exc, (TerminationSignal, KeyboardInterrupt))  # what Prefect's engine saw
    with pytest.raises(Terminated):  # mnistflow.entry.run_main: one line, exit 143
        stopped_by_signal(exc)
    assert terminated.is_set()


def test_its_traceback_is_kept_out_of_the_log_and_other_errors_keep_theirs():
    hide = _HideUserErrorTracebacks()
    for exc, hidden in ((wrapped_sigterm(), True), (ValueError("a bug"), False)):
        record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "failed", None,
                                   (type(exc), exc, exc.__traceback__))
        assert hide.filter(record) and (record.exc_info is None) == hidden


def test_an_error_with_no_signal_under_it_is_left_to_propagate():
    stopped_by_signal(ValueError("a bug"))  # returns: the caller re-raises it as it was
    stopped_by_signal(Terminated())  # already the signal run_main ends on
    assert not terminated.is_set()
