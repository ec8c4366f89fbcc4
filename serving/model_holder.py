"""The model a service answers with: the file's current contents, reloaded when a
promotion replaces the file, so no request waits on a half-written one and no
answer mixes two models (a request takes one loaded model for all its images)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from fastapi import HTTPException

from mnistflow import atomic
from mnistflow.errors import MnistflowError
from mnistflow.inference import Predictor

from .metrics import NoMetrics, ServiceMetrics

log = logging.getLogger("mnistflow")


class ModelHolder:
    """The model file's current contents: reloaded when the file is replaced, and
    loaded when it first appears (a service started before any champion).

    ``name`` is how answers name the file (never its absolute path); logs say the path."""

    def __init__(self, path: Path, metrics: ServiceMetrics | NoMetrics = NoMetrics(), name: str | None = None,
                 optional: bool = False) -> None:
        """``optional``: a model that may come and go (the shadow): a bad file is logged, not fatal,
        and a file taken away is a model no longer held."""
        self.path, self.metrics, self.optional = Path(path), metrics, optional
        self.name = name or self.path.name
        self._lock = threading.Lock()
        self._stamp = atomic.stamp(self.path)
        self._predictor: Predictor | None = None
        self._versions: dict[str, str | None] = {}
        if self._stamp is not None and optional:
            self._reload()
        elif self._stamp is not None:  # a file that is there must load: a bad one is one line at start
            self._predictor = self._load()
        self._announce()

    def _load(self) -> Predictor:
        # The champion is a link to one installed folder: resolved once, the model, its digest and
        # its record are all that version's, whatever promotion happens meanwhile.
        real = self.path.resolve()
        predictor = Predictor.load(real)
        self._versions[predictor.sha256] = registry_version(real.parent / "record.json", predictor.sha256)
        return predictor

    def version(self, predictor: Predictor) -> str | None:
        """The registry version ``predictor`` is (a champion's), or None (a model file given by hand)."""
        return self._versions.get(predictor.sha256)

    def _announce(self) -> None:
        self.metrics.serving(self._predictor and self._predictor.sha256, self.name)

    def current(self) -> Predictor | None:
        stamp = atomic.stamp(self.path)  # one stat per request: microseconds
        if stamp is None and self.optional and self._predictor is not None:
            with self._lock:
                self._predictor, self._stamp = None, None
                log.info("%s is gone: no longer held", self.path)
        # One request loads a replaced file; those that arrive meanwhile answer with the model
        # they would have had a moment before, rather than queue behind the load (a swap under
        # load: bench/swaps.py). With no model yet, they wait for the first.
        if stamp is not None and stamp != self._stamp and self._lock.acquire(blocking=self._predictor is None):
            try:
                if stamp != self._stamp:
                    self._reload()
                    self._stamp = stamp
                    self._announce()
            finally:
                self._lock.release()
        return self._predictor

    def _reload(self) -> None:
        first = self._predictor is None
        try:
            self._predictor = self._load()
        except Exception as exc:  # noqa: BLE001  whatever the new file is, keep answering with the model we have
            reason = str(exc) if isinstance(exc, MnistflowError) else f"{self.path}: {type(exc).__name__}: {exc}"
            log.error("kept the previous model: %s", reason)
            self.metrics.reload_failures.inc()
            return
        log.info("now serving %s (sha256 %s)", self.path, self._predictor.sha256[:12])
        if not first:
            self.metrics.reloads.inc()

    def serving(self) -> Predictor:
        """The model for a request, or a 503 saying what the service waits for."""
        predictor = self.current()
        if predictor is None:
            raise HTTPException(503, f"no model loaded yet: waiting for {self.name}")
        return predictor

    def unready(self) -> str | None:
        """Why the service cannot answer now, or None: a model is loaded and the file
        on disk is still the one loaded (its sha256 verifies)."""
        predictor = self.current()
        if predictor is None:
            return f"no model loaded yet: waiting for {self.name}"
        try:
            on_disk = atomic.sha256_of(self.path)
        except OSError:
            return f"{self.name}: gone since it was loaded"
        if on_disk != predictor.sha256:
            return f"{self.name}: sha256 {on_disk[:12]} is not the loaded model's {predictor.sha256[:12]}"
        return None


def registry_version(record: Path, sha256: str) -> str | None:
    """The version a champion's record gives its model, when the record is this model's."""
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("model_sha256") != sha256 or type(found.get("version")) is not int:
        return None
    return str(found["version"])
