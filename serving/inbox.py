"""The feedback inbox: corrections sent from the page, waiting for intake.

``POST /feedback`` puts one picture and its claimed label here, never into
training data: ``python -m flows.intake --inbox`` gates them like any other
source (lifecycle/gate.py) and moves what it read to ``taken/``. Each item is
``<id>.png`` and then ``<id>.json`` (the label, the model that answered, its
answer, the time, and who sent it: serving/clients.py), both written atomically, the record last: a reader that
sees the record finds the picture.

Bounded: bytes per item, items and bytes in the inbox (once full, the items
already there are kept and new ones refused with 507), and corrections per
client per minute (429). A full inbox never stops predictions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnistflow import atomic
from pictures.labels import class_index
from mnistflow.errors import MnistflowError

from .decoding import TooManyPixels, decode_within_budget
from pictures.imaging import ImageError, png_bytes


@dataclass(frozen=True)
class InboxLimits:
    item_bytes: int = 512 * 2**10        # a 280x280 canvas PNG is 5-20 KB
    items: int = 10_000
    total_bytes: int = 200 * 2**20       # pictures and records together
    per_client_per_minute: int = 30
    per_minute: int = 600                # from all clients together: many addresses are no way round the bound


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Refused(Exception):
    """A correction not taken: the HTTP status and the one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Inbox:
    def __init__(self, directory: Path, limits: InboxLimits = InboxLimits()) -> None:
        self.directory, self.limits = Path(directory), limits
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._all: deque[float] = deque()

    def _rate_limited(self, client: str) -> None:
        now, window = time.monotonic(), self._recent[client]
        for times in (window, self._all):
            while times and now - times[0] > 60:
                times.popleft()
        if len(window) >= self.limits.per_client_per_minute:
            raise Refused(429, f"more than {self.limits.per_client_per_minute} corrections a minute from "
                               f"{client}; try again in {60 - (now - window[0]):.0f} s")
        if len(self._all) >= self.limits.per_minute:
            raise Refused(429, f"more than {self.limits.per_minute} corrections a minute in all; try again in "
                               f"{60 - (now - self._all[0]):.0f} s")
        window.append(now)
        self._all.append(now)

    def _room(self, size: int) -> None:
        items, used = 0, 0
        if self.directory.is_dir():
            for entry in os.scandir(self.directory):
                if entry.is_file() and entry.name.endswith((".png", ".json")):
                    items, used = items + entry.name.endswith(".png"), used + entry.stat().st_size
        if items >= self.limits.items or used + size > self.limits.total_bytes:
            raise Refused(507, f"the feedback inbox is full ({items:,} items, {used:,} bytes; limits "
                               f"{self.limits.items:,} and {self.limits.total_bytes:,}); run "
                               "`python -m flows.intake --inbox` to take them in")

    def add(self, picture: bytes, label: int | str, model_sha256: str, predicted: str | None, classes: list[str],
            serving_sha256: str | None, client: str) -> dict[str, Any]:
        """Check one correction (its fields' types: serving.bodies.Correction) against the
        model's classes and the inbox's bounds, and put it in the inbox; its record, or ``Refused``."""
        if len(picture) > self.limits.item_bytes:
            raise Refused(413, f"image: {len(picture):,} bytes; at most {self.limits.item_bytes:,} per correction")
        index = class_index(str(label), classes)
        if index is None:
            raise Refused(422, f"label: {str(label)[:40]!r} is not one of the model's classes ({', '.join(classes)})")
        with self._lock:  # before any decoding: a client over its rate costs nothing more
            self._rate_limited(client)
        try:  # within the service's decoding budget, as /predict's pictures are
            grey = decode_within_budget([("image", picture)])[0]
        except TooManyPixels as exc:
            raise Refused(413, f"image: {exc}") from None
        except ImageError as exc:
            raise Refused(422, str(exc)) from None
        if not picture.startswith(PNG_SIGNATURE):  # a GIF, a JPEG...: stored as the PNG of what intake reads
            picture = png_bytes(grey)
        record = {"label": classes[index], "model_sha256": model_sha256, "client": client, "predicted": predicted,
                  # An answer from another model (the champion changed since) is kept, and said so.
                  "model_known": model_sha256 == serving_sha256,
                  "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        with self._lock:
            self._room(len(picture))
            ident = f"{record['time'].replace(':', '').replace('-', '')[:18]}-{secrets.token_hex(4)}"
            try:
                atomic.write_bytes(self.directory / f"{ident}.png", picture)
                atomic.write_json(self.directory / f"{ident}.json", record)
            except (OSError, MnistflowError) as exc:  # a full disk, a read-only registry: the user's to fix
                with contextlib.suppress(OSError):
                    (self.directory / f"{ident}.png").unlink(missing_ok=True)
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split(": ")[-1]
                raise Refused(507, f"the feedback inbox cannot take it now ({reason}); predictions go on") from None
        return {"id": ident, **record}


