"""The service under load, on 127.0.0.1 only: 100 concurrent clients for a bounded
time, and a client that sends its headers a byte a second."""

from __future__ import annotations

import asyncio
import io
import socket
import statistics
import threading
import time

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from harness.real_parts import Service
from harness.load import steady_load

# The load test saturates both cores for seconds: the page's timed waits never run beside it.
pytestmark = [pytest.mark.xdist_group("saturates-cpu")]

CLIENTS, SECONDS = 100, 8.0


def png() -> bytes:
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def hammer(url: str, seconds: float) -> tuple[list[int], list[float]]:
    answers = asyncio.run(steady_load(url, {"content": png(), "headers": {"content-type": "image/png"}}, CLIENTS,
                                      seconds))
    return [a.status for a in answers], [a.seconds for a in answers]


def test_a_hundred_concurrent_clients_get_no_5xx_and_memory_stays_flat(trained, tmp_path):  # noqa: F811
    with Service(trained.model, tmp_path) as service:
        process = psutil.Process(service.proc.pid)
        hammer(service.url, 2.0)  # warm: allocator, thread pool, first-call paths
        before = process.memory_info().rss
        statuses, times = hammer(service.url, SECONDS)
        after = process.memory_info().rss
    p50, p99 = statistics.median(times), float(np.percentile(times, 99))
    print(f"\n{len(statuses)} requests from {CLIENTS} clients in {SECONDS:.0f} s: p50 {1000 * p50:.1f} ms, "
          f"p99 {1000 * p99:.1f} ms; RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB")
    assert len(statuses) > CLIENTS and set(statuses) == {200}
    assert after < before * 1.15 + 16 * 2**20, (before, after)  # no growth with the requests served


# Shorter than the service's defaults (10 s, 30 s), through its own flags: the test waits them out.
HEADER_SECONDS, BODY_SECONDS = 4.0, 8.0
DEADLINES = ("--header-seconds", str(HEADER_SECONDS), "--body-seconds", str(BODY_SECONDS))


def closed(sock: socket.socket) -> bool:
    """Has the other side closed this connection?"""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b""


def test_a_client_sending_a_byte_a_second_neither_blocks_others_nor_stays(trained, tmp_path):  # noqa: F811
    with Service(trained.model, tmp_path, args=DEADLINES) as service:
        host, port = service.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        dropped = threading.Event()

        def trickle() -> None:
            try:
                for byte in request:
                    slow.sendall(bytes([byte]))
                    time.sleep(1.0)
                    if closed(slow):
                        break
            except OSError:  # a broken pipe: the server has closed it
                pass
            dropped.set()

        slow.setblocking(True)
        thread = threading.Thread(target=trickle, daemon=True)
        started = time.monotonic()
        thread.start()
        for _ in range(20):  # others are served meanwhile (a held worker would time these out)
            assert httpx.get(f"{service.url}/health", timeout=5).status_code == 200
        assert dropped.wait(60), "the slow client was never dropped"
        held = time.monotonic() - started
        print(f"\nthe slow client was dropped after {held:.1f} s")
        # Not before its time: a busy machine can only make the drop later, so there is no upper
        # bound here but the wait above.
        assert held >= HEADER_SECONDS - 1
        slow.close()


def test_a_body_sent_a_byte_a_second_is_cut_off_after_its_deadline(trained, tmp_path):  # noqa: F811
    """Headers on time, then a body of 100 bytes a byte a second: held no longer than BODY_SECONDS."""
    with Service(trained.model, tmp_path, args=DEADLINES) as service:
        host, port = service.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n")
        started, sent, cut = time.monotonic(), 0, False
        try:
            while sent < 100 and time.monotonic() - started < BODY_SECONDS + 30:
                if closed(slow):
                    cut = True
                    break
                slow.sendall(b" ")
                sent += 1
                time.sleep(1.0)
        except OSError:  # a broken pipe: the server has closed it
            cut = True
        slow.close()
        assert cut, f"the slow body was never cut off ({sent} bytes sent, a byte a second)"
        assert sent >= BODY_SECONDS - 2  # bytes are the clock: not cut before its deadline


def whole_response(sock: socket.socket) -> bytes:
    """One response read whole: its head, then as many body bytes as Content-Length says
    (the head and the body may come in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_kept_alive_connection_idles_past_the_header_deadline_but_its_next_slow_headers_do_not(trained, tmp_path):  # noqa: F811,E501
    """Idle between requests is the keep-alive timer's (75 s): a client that waits longer than the
    header deadline before its next request is still answered. The next request's headers, sent
    a byte a second, are cut off header_seconds after their first byte."""
    with Service(trained.model, tmp_path, args=DEADLINES) as service:
        host, port = service.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        for pause in (HEADER_SECONDS + 2, 1.0):  # idle past the deadline: the same connection answers
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert whole_response(slow).startswith(b"HTTP/1.1 200 OK")
            time.sleep(pause)
        # then the next request trickles
        started, sent = time.monotonic(), 0
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200:
                if closed(slow):
                    break
                slow.sendall(bytes([byte]))
                sent += 1
                time.sleep(1.0)
        except OSError:  # a broken pipe: the server has closed it
            pass
        slow.close()
        assert HEADER_SECONDS - 1 <= time.monotonic() - started < 60 and sent < 200
