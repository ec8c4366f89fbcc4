"""The shadow in the service: a challenger (``<registry>/shadow/model.pt``, lifecycle.shadow)
that answers a fraction of the requests beside the champion, off the request path.

A request is answered by the champion alone; its prepared pixels and the
champion's answers are then put on a bounded queue (never waited on: a full
queue drops the work and counts it), and one worker thread answers them with
the shadow, many requests in one forward pass. What the shadow said is compared with what the champion said, image
by image: agreement, the pairs of classes they disagree on, both confidences,
and the shadow's time. These go to ``/metrics`` and to a bounded window for the
current (champion, shadow) pair, which ``GET /monitoring/shadow`` gives and the
``judge-shadow`` flow reads. Blank pictures, which the service flags rather
than answers, are left out.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from mnistflow.inference import Predictor

from .metrics import NoMetrics, ServiceMetrics
from .model_holder import ModelHolder

log = logging.getLogger("mnistflow")

WINDOW = 20_000  # images remembered for the current pair
QUEUE = 256  # requests waiting for the shadow; past it they are dropped, never waited on
GATHER_SECONDS = 0.05  # how long the shadow gathers requests into one forward pass
BATCH_IMAGES = 256


class Shadow:
    def __init__(self, path: Path, fraction: float, metrics: ServiceMetrics | NoMetrics, seed: int | None = None) -> None:
        self.holder = ModelHolder(path, NoMetrics(), name="shadow/model.pt", optional=True)
        self.fraction, self.metrics = fraction, metrics
        self._draw = random.Random(seed)
        self._queue: queue.Queue[tuple | None] = queue.Queue(maxsize=QUEUE)
        self._lock = threading.Lock()
        self._pair: tuple[str, str] | None = None
        self._rows: deque[tuple[int, int, float, float]] = deque(maxlen=WINDOW)
        self._seconds: deque[float] = deque(maxlen=1000)
        self._dropped, self._dropped_lock = 0, threading.Lock()
        self._worker = threading.Thread(target=self._work, name="shadow", daemon=True)
        self._worker.start()

    def offer(self, champion: Predictor, pixels: np.ndarray, results: list[dict[str, Any]]) -> None:
        """Hand this request to the shadow, when it is drawn and there is a shadow; returns at once."""
        if self.fraction <= 0 or (self.fraction < 1 and self._draw.random() >= self.fraction):
            return
        shadow = self.holder.current()
        if shadow is None or shadow.sha256 == champion.sha256:
            return
        answered = [i for i, r in enumerate(results) if not r.get("blank")]
        if not answered:
            return
        said = [(results[i]["class_index"], results[i]["top"][0]["probability"]) for i in answered]
        try:
            self._queue.put_nowait((champion.sha256, shadow, np.asarray(pixels)[answered], said))
        except queue.Full:
            with self._dropped_lock:  # not the window's lock, which the worker holds as it writes
                self._dropped += 1
            self.metrics.shadow_dropped.inc()

    def _work(self) -> None:
        while True:
            batch = self._gather()
            try:
                groups: dict[tuple[str, str], list[tuple]] = {}
                for item in batch:
                    if item is not None:
                        groups.setdefault((item[0], item[1].sha256), []).append(item)
                for items in groups.values():
                    self._answer(items)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _gather(self) -> list[tuple | None]:
        """The next requests, gathered for up to GATHER_SECONDS or BATCH_IMAGES images: one
        forward pass for many requests holds the interpreter far less than one each (with a
        shadow answering every request, one PNG's p50 rose 17% for cnn-fast, one by one)."""
        batch = [self._queue.get()]
        images = len(batch[0][2]) if batch[0] is not None else 0
        deadline = time.monotonic() + GATHER_SECONDS
        while batch[-1] is not None and images < BATCH_IMAGES and (left := deadline - time.monotonic()) > 0:
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
            images += len(batch[-1][2]) if batch[-1] is not None else 0
        return batch

    def _answer(self, items: list[tuple]) -> None:
        """One forward pass of the shadow over the gathered requests' images."""
        champion_sha256, shadow = items[0][0], items[0][1]
        pixels = np.concatenate([item[2] for item in items])
        said = [pair for item in items for pair in item[3]]
        started = time.perf_counter()
        try:
            probabilities = shadow.probabilities(pixels)
        except Exception as exc:  # noqa: BLE001  a shadow that fails is judged on it, never a request's failure
            log.error("the shadow %s failed on %d images: %s", shadow.sha256[:12], len(pixels), exc)
            return
        seconds = (time.perf_counter() - started) / len(items)  # per request, as /metrics says
        theirs = probabilities.argmax(axis=1)
        rows = [(int(c), int(s), float(cc), float(probabilities[n, s]))
                for n, ((c, cc), s) in enumerate(zip(said, theirs))]
        self._keep((champion_sha256, shadow.sha256), rows, seconds, shadow.labels)

    def _keep(self, pair: tuple[str, str], rows: list[tuple[int, int, float, float]], seconds: float,
              labels: list[str]) -> None:
        with self._lock:
            if pair != self._pair:  # a new champion or a new shadow: a new comparison
                self._pair = pair
                self._rows.clear()
                self._seconds.clear()
            self._rows.extend(rows)
            self._seconds.append(seconds)
        self.metrics.observe_shadow([(labels[c], labels[s], sc) for c, s, _, sc in rows], seconds)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def settled(self, timeout: float = 10) -> bool:
        """Whether the queue emptied within ``timeout`` (the tests wait on it, not on time)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def snapshot(self) -> dict[str, Any]:
        shadow = self.holder.current()
        with self._lock:
            pair, rows, seconds = self._pair, list(self._rows), list(self._seconds)
        dropped = self._dropped
        if shadow is None or pair is None or pair[1] != shadow.sha256:
            rows, seconds = [], []
        labels = shadow.labels if shadow is not None else []
        disagreements = Counter(f"{labels[c]}->{labels[s]}" for c, s, _, _ in rows if c != s)
        return {"shadow_sha256": shadow and shadow.sha256, "champion_sha256": pair[0] if rows else None,
                "fraction": self.fraction, "images": len(rows), "dropped_requests": dropped,
                "agreement": float(np.mean([c == s for c, s, _, _ in rows])) if rows else None,
                "champion_confidence": float(np.mean([r[2] for r in rows])) if rows else None,
                "shadow_confidence": float(np.mean([r[3] for r in rows])) if rows else None,
                "disagreements": dict(disagreements.most_common()),
                "latency_seconds": {"p50": float(np.percentile(seconds, 50)), "p99": float(np.percentile(seconds, 99))}
                if seconds else None}
