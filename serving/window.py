"""A bounded rolling window of what the service answered, for the drift check
(flows/monitor.py): per image its predicted class, confidence, mean intensity
and ink bounding box (mnistflow.profile), never the picture itself. The window
belongs to one model: a new champion starts it afresh."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from mnistflow.profile import SUMMARIES, image_summaries

SIZE = 5000


class ServedWindow:
    def __init__(self, size: int = SIZE) -> None:
        self._rows: deque[tuple[int, float, float, float, float]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.model_sha256: str | None = None

    def add(self, model_sha256: str, pixels: np.ndarray, results: list[dict[str, Any]]) -> None:
        summaries = image_summaries(np.asarray(pixels).reshape(len(results), *np.shape(pixels)[-2:]))
        rows = [(r["class_index"], r["top"][0]["probability"], float(summaries["mean_intensity"][i]),
                 float(summaries["ink_height"][i]), float(summaries["ink_width"][i]))
                for i, r in enumerate(results) if not r.get("blank")]
        with self._lock:
            if model_sha256 != self.model_sha256:
                self._rows.clear()
                self.model_sha256 = model_sha256
            self._rows.extend(rows)

    def snapshot(self, classes: list[str]) -> dict[str, Any]:
        with self._lock:
            rows = list(self._rows)
        columns = list(zip(*rows)) if rows else [[] for _ in range(5)]
        counts = np.bincount(np.asarray(columns[0], dtype=np.int64), minlength=len(classes)).tolist()
        return {"model_sha256": self.model_sha256, "size": len(rows), "classes": classes, "class_counts": counts,
                "samples": {name: [round(float(v), 4) for v in columns[i + 1]] for i, name in enumerate(SUMMARIES)}}
