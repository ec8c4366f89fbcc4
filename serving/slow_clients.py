"""Slow clients: a connection must finish its request's headers within HEADER_SECONDS,
and then its body within BODY_SECONDS.

uvicorn (0.54) has no such limit: its keep-alive timer runs only between a
response and the next request's first byte, so a client that then sends its
headers a byte a second holds a connection, and a file descriptor, for as long
as it likes (slowloris). ``HeaderDeadline`` is uvicorn's h11 protocol with a
deadline armed when a connection opens and at the first byte of each next
request on a kept-alive one, and cleared when a request's headers are complete,
then armed again for the body and cleared when the body is complete; past
either, the connection is closed. An idle kept-alive connection is uvicorn's
keep-alive timer's alone (``KEEP_ALIVE_SECONDS``).

It relies on the protocol's internals (``cycle``, ``transport``, ``loop``), so it
is listed in mnistflow/private_api.py (``header-deadline``; off: uvicorn's own
protocol, and no limit), and tests/{unit,integration}/test_private_api.py checks those names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from mnistflow.errors import MnistflowError

HEADER_SECONDS = 10.0
# A request's body, from its headers' end: an 8 MiB upload needs 30 s only below 2 Mbit/s.
BODY_SECONDS = 30.0
# How long a kept-alive connection may sit idle. Longer than clients keep theirs (httpx: 5 s,
# uvicorn's own default): with both at 5 s, a client reusing a connection as the server closed it
# got a dropped request, 9 in 9,694 under 50 clients (bench.swaps). nginx's default is 75 s.
KEEP_ALIVE_SECONDS = 75


def with_deadlines(header_seconds: float = HEADER_SECONDS, body_seconds: float = BODY_SECONDS) -> type[H11Protocol]:
    """``HeaderDeadline`` with these limits (``--header-seconds``, ``--body-seconds``); uvicorn takes a
    protocol class, not an instance, so the limits are the class's."""
    for name, seconds in (("--header-seconds", header_seconds), ("--body-seconds", body_seconds)):
        if not 0 < seconds <= 3600:
            raise MnistflowError(f"{name} {seconds}: a deadline is more than 0 and at most 3600 seconds")
    return type("HeaderDeadline", (HeaderDeadline,), {"header_seconds": header_seconds, "body_seconds": body_seconds})


class HeaderDeadline(H11Protocol):
    header_seconds = HEADER_SECONDS
    body_seconds = BODY_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._waiting_since_cycle: Any = self.cycle
        self._deadline = self.loop.call_later(self.header_seconds, self._too_slow)

    def _clear(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_idle", False):
            # The next request's first bytes on a kept-alive connection: its headers have
            # header_seconds from now. (While it was idle, uvicorn's keep-alive timer ran.)
            self._idle = False
            self._arm()
        super().data_received(data)
        cycle = self.cycle
        if cycle is None:
            return
        if cycle is not self._waiting_since_cycle:
            # A whole request's headers arrived (a new cycle began): now its body has body_seconds.
            self._clear()
            self._waiting_since_cycle, self._in_body = cycle, cycle.more_body
            if cycle.more_body:
                self._deadline = self.loop.call_later(self.body_seconds, self._too_slow)
        elif getattr(self, "_in_body", False) and not cycle.more_body:
            self._in_body = False
            self._clear()  # the body is complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._clear()
            self._idle = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closed a connection too slow to send its request (headers within %.0f s, the body "
                             "within %.0f s)", self.header_seconds, self.body_seconds)
            self.transport.close()
