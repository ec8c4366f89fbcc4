"""A steady load on the service, also while its champion is swapped: shared by
tests/integration/test_load.py (a hundred clients), tests/integration/test_swaps.py
(which checks every answer) and bench/swaps.py (which reports the latency during
swaps against the steady latency).

Every client sends the same batch of images, again and again; every answer is
kept with when it was sent, how long it took, its status, the model its
``X-Model-SHA256`` header names and its probabilities, so that a caller can
check that each batch was answered whole by the model the header names.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Answer:
    sent: float  # time.monotonic() when the request left
    seconds: float
    status: int  # 0: no answer (the connection dropped; ``said`` says how)
    model: str | None  # the X-Model-SHA256 header
    said: str | None  # the model the body names
    probabilities: np.ndarray | None


async def steady_load(url: str, request: dict, clients: int, seconds: float) -> list[Answer]:
    """``clients`` clients each posting ``request`` (httpx's keyword arguments) to /predict
    again and again for ``seconds``; every answer."""
    import httpx

    answers: list[Answer] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        async def client() -> None:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = await http.post("/predict", **request)
                except httpx.TransportError as exc:  # a connection dropped: an answer that never came
                    answers.append(Answer(sent, time.monotonic() - sent, 0, None, f"{type(exc).__name__}: {exc}",
                                          None))
                    continue
                took = time.monotonic() - sent
                body = response.json() if response.status_code == 200 else {}
                answers.append(Answer(sent, took, response.status_code, response.headers.get("x-model-sha256"),
                                      (body.get("model") or {}).get("sha256"),
                                      np.array([p["probabilities"] for p in body.get("predictions", [])])))

        await asyncio.gather(*(client() for _ in range(clients)))
    return answers


def under_load(url: str, pixels: np.ndarray, clients: int, seconds: float,
               meanwhile: Callable[[], list[float]]) -> tuple[list[Answer], list[float]]:
    """``clients`` clients for ``seconds`` while ``meanwhile()`` runs (it returns the times of its swaps)."""
    result: dict[str, list[Answer]] = {}
    loader = threading.Thread(target=lambda: result.setdefault("answers", asyncio.run(
        steady_load(url, {"json": {"pixels": np.asarray(pixels).tolist()}}, clients, seconds))))
    loader.start()
    try:
        swaps = meanwhile()
    finally:
        loader.join()
    return result["answers"], swaps


def swapping(swap: Callable[[int], None], count: int, every: float, first_after: float) -> Callable[[], list[float]]:
    """``swap(n)`` ``count`` times, ``every`` seconds, starting after ``first_after``; their times."""
    def run() -> list[float]:
        times = []
        time.sleep(first_after)
        for n in range(count):
            times.append(time.monotonic())
            swap(n)
            time.sleep(every)
        return times
    return run


def latency(answers: list[Answer], swaps: list[float], window: float = 1.0) -> dict[str, float]:
    """p50 and p99 (ms) of the answers sent within ``window`` seconds after a swap, and of the others."""
    close = [any(0 <= a.sent - t <= window or a.sent <= t <= a.sent + a.seconds for t in swaps) for a in answers]
    near = [a.seconds for a, by_a_swap in zip(answers, close) if by_a_swap]
    steady = [a.seconds for a, by_a_swap in zip(answers, close) if not by_a_swap]
    figures = {"requests": len(answers), "near_swaps": len(near)}
    for name, times in (("steady", steady), ("swap", near)):
        figures[f"{name}_p50_ms"] = 1000 * float(np.percentile(times, 50)) if times else float("nan")
        figures[f"{name}_p99_ms"] = 1000 * float(np.percentile(times, 99)) if times else float("nan")
    figures["p99_ratio"] = figures["swap_p99_ms"] / figures["steady_p99_ms"]
    return figures
