"""The service's Prometheus metrics, through prometheus-client.

prometheus-client is the Prometheus project's own Python library: its text
format, counter and histogram semantics and ``_created`` samples are what every
scraper expects. The FastAPI instrumentator would add only the request metrics,
and its route labels and buckets would be one more thing to configure; the
model-side metrics (predictions by class, confidence, reloads, feedback) are
ours either way. Each app has its own ``CollectorRegistry``, so two services in
one process (the tests) never share counts.

Routes are labelled by the app's own route paths; any other path is ``other``,
so a scanner probing random URLs cannot grow the number of series.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class ServiceMetrics:
    enabled = True

    def __init__(self, routes: set[str]) -> None:
        self.routes = routes
        r = self.registry = CollectorRegistry()
        self.requests = Counter("mnistflow_http_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=r)
        self.latency = Histogram("mnistflow_http_request_duration_seconds", "Time to answer, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("mnistflow_images_predicted", "Images predicted (blank ones too)", registry=r)
        self.predictions = Counter("mnistflow_predictions", "Predictions by class (blank: no digit)",
                                   ["label"], registry=r)
        self.confidence = Histogram("mnistflow_prediction_confidence", "Top-1 probability of each prediction",
                                    buckets=CONFIDENCE_BUCKETS, registry=r)
        self.reloads = Counter("mnistflow_model_reloads", "Model files loaded after the first", registry=r)
        self.reload_failures = Counter("mnistflow_model_reload_failures",
                                       "Model files that failed to load (the previous model kept)", registry=r)
        self.feedback = Counter("mnistflow_feedback_received", "Corrections put in the inbox", registry=r)
        self.feedback_refused = Counter("mnistflow_feedback_refused", "Corrections refused, by HTTP status",
                                        ["status"], registry=r)
        self.ready = Gauge("mnistflow_ready", "1 when a verified model is loaded (GET /ready answers 200)",
                           registry=r)
        self.model = Info("mnistflow_model", "The model in service", registry=r)
        self.shadow_images = Counter("mnistflow_shadow_images", "Images the shadow answered beside the champion",
                                     registry=r)
        self.shadow_agreements = Counter("mnistflow_shadow_agreements",
                                         "Images the shadow gave the champion's class", registry=r)
        self.shadow_disagreements = Counter("mnistflow_shadow_disagreements",
                                            "Images they gave different classes, by the champion's and the shadow's",
                                            ["champion", "shadow"], registry=r)
        self.shadow_confidence = Histogram("mnistflow_shadow_confidence", "The shadow's top-1 probability",
                                           buckets=CONFIDENCE_BUCKETS, registry=r)
        self.shadow_latency = Histogram("mnistflow_shadow_latency_seconds", "The shadow's time for a request's images",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.shadow_dropped = Counter("mnistflow_shadow_dropped", "Requests not shadowed: the shadow's queue was full",
                                      registry=r)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in self.routes else "other"
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_answers(self, results: list[dict[str, Any]]) -> None:
        self.images.inc(len(results))
        for result in results:
            if result.get("blank"):
                self.predictions.labels("blank").inc()
                continue
            self.predictions.labels(str(result["label"])).inc()
            self.confidence.observe(float(result["top"][0]["probability"]))

    def observe_shadow(self, rows: list[tuple[str, str, float]], seconds: float) -> None:
        """One shadowed request: per image the champion's class, the shadow's, and the shadow's confidence."""
        self.shadow_images.inc(len(rows))
        self.shadow_latency.observe(seconds)
        for champion, shadow, confidence in rows:
            self.shadow_confidence.observe(confidence)
            if champion == shadow:
                self.shadow_agreements.inc()
            else:
                self.shadow_disagreements.labels(champion, shadow).inc()

    def serving(self, sha256: str | None, path: str) -> None:
        self.model.info({"sha256": sha256 or "", "path": path})
        self.ready.set(1 if sha256 else 0)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Dropped:
    """A counter that counts nothing."""

    def inc(self, amount: float = 1) -> None:
        pass

    def labels(self, *values: str) -> "_Dropped":
        return self


class NoMetrics:
    """Metrics switched off (``--no-metrics``): the calls ServiceMetrics takes, nothing
    counted, and no GET /metrics. The routes count without asking whether they may."""

    enabled = False
    feedback = feedback_refused = reloads = reload_failures = shadow_dropped = _Dropped()

    def observe_answers(self, results: list[dict[str, Any]]) -> None:
        pass

    def observe_shadow(self, rows: list[tuple[str, str, float]], seconds: float) -> None:
        pass

    def serving(self, sha256: str | None, path: str) -> None:
        pass


class TimingMiddleware:
    """Counts and times every HTTP request: a plain ASGI middleware, because
    Starlette's ``BaseHTTPMiddleware`` (``app.middleware("http")``) runs each request
    through an extra task and memory stream, which cost half the p50 of one PNG here
    (3.9 against 2.6 ms, bench/serve.py)."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # Routed requests are labelled by their route's template (/v2/models/{name}/infer), not the
            # path a client chose: the router leaves the route it matched in the scope.
            route = getattr(scope.get("route"), "path", scope["path"])
            self.metrics.observe_request(route, status[0], time.perf_counter() - started)
