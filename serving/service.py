"""Serve a model over HTTP: ``python -m serving.service [--model PATH] [--host H] [--port P]``

FastAPI on uvicorn (both come with Prefect):

- ``POST /predict``: images as a multipart upload (one file or several), as a
  raw image body (``Content-Type: image/png``), or as JSON pixels
  (``{"pixels": [...]}``: one image of H*W values or H x W rows, or a list of
  them; values in [0, 1], light on dark). Pictures are prepared as MNIST's
  were (``pictures.imaging``); JSON pixels go in as they are.
- ``POST /feedback``: a correction from the page (``{"image": PNG as a data
  URL or base64, "label", "model_sha256", "predicted"}``) into the inbox
  (``serving.inbox``), for intake to review.
- ``GET /health`` (200 while the process lives), ``GET /ready`` (200 only with
  a verified model loaded, else 503 and why), ``GET /metrics`` (Prometheus,
  ``serving.metrics``), ``GET /model`` (the model card, metrics and digest), and
  ``GET /``: a page to draw a digit on and correct the answer.

The model defaults to the champion (``registry/champion/model.pt``), else the
run's ``outputs/model.pt``; with neither, the service starts unready and
waits for the champion. When a promotion replaces the file, the next
request loads it; each request takes one loaded model for all its images, so
no answer mixes two models and no request waits on a half-written file
(promotion renames a whole file into place).

The routes are ``serving.routes``; this module makes the app and runs it.
"""

from __future__ import annotations

import argparse
import socket
import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from lifecycle.registry_paths import RegistryPaths
from mnistflow.entry import run_main, setup_logging
from mnistflow.errors import MnistflowError
from mnistflow.model_repository import MODEL_NAME
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from mnistflow.private_api import enabled

from .bodies import MAX_UPLOAD_BYTES
from .clients import FeedbackAccess, check_proxies, read_tokens
from .inbox import Inbox
from .metrics import NoMetrics, ServiceMetrics, TimingMiddleware
from .model_file import ModelFiles, choose_model
from .model_holder import ModelHolder
from .open_inference import ProtocolError
from .routes import Service, router
from .shadow import Shadow
from .v2_routes import check_model_name, router as v2_router, v2_error
from .slow_clients import BODY_SECONDS, HEADER_SECONDS, KEEP_ALIVE_SECONDS, with_deadlines
from .window import ServedWindow

log = logging.getLogger("mnistflow")


def create_app(files: ModelFiles | Path, max_upload_bytes: int = MAX_UPLOAD_BYTES, inbox: Inbox | None = None,
               metrics: bool = True, access: FeedbackAccess = FeedbackAccess(), model_name: str = MODEL_NAME,
               shadow: Path | None = None, shadow_fraction: float = 1.0) -> FastAPI:
    """The service for ``files`` (a bare path: a model file and whatever lies beside it);
    corrections go to ``inbox`` (none: POST /feedback answers 404), from the clients
    ``access`` admits; ``metrics``: count and time every request for GET /metrics;
    ``model_name``: the model's name on the Open Inference Protocol's /v2 routes; ``shadow``: the
    shadow's model file, which answers ``shadow_fraction`` of the requests beside the champion
    when it is there (serving.shadow)."""
    files = files if isinstance(files, ModelFiles) else ModelFiles.given(Path(files))
    app = FastAPI(title="mnistflow", summary="An MNIST-family classifier, served")
    app.include_router(router)
    app.include_router(v2_router)
    app.add_exception_handler(ProtocolError, v2_error)
    app.add_exception_handler(HTTPException, http_error)
    counters = ServiceMetrics({route.path for r in (router, v2_router) for route in r.routes}) if metrics else NoMetrics()
    if counters.enabled:
        app.add_middleware(TimingMiddleware, metrics=counters)
    app.state.service = Service(files, ModelHolder(files.model, counters, files.name), ServedWindow(), counters,
                                inbox, access, max_upload_bytes,
                                resources.files("serving").joinpath("page.html").read_text(),
                                check_model_name(model_name),
                                Shadow(shadow, shadow_fraction, counters) if shadow is not None else None)
    return app


async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's own error body (``{"detail": ...}``), except under /v2, where the Open
    Inference Protocol's clients read ``{"error": ...}``."""
    if request.url.path.startswith("/v2"):
        return v2_error(request, exc)
    return await http_exception_handler(request, exc)


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket uvicorn serves on, bound here so that a taken port is the user's
    one line (and exit 2), not uvicorn's error after "serving on"."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
        # and an accepted socket takes the listener's. With proto 0, every answer on a kept-alive
        # connection waited 40 ms for the client's delayed ACK (Nagle): 44 ms for GET /health.
        listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: no wait after a restart
        listening.bind((host, port))
    except OSError as exc:
        raise MnistflowError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "stop what serves there, or give another --port (or --host)") from None
    except OverflowError:
        raise MnistflowError(f"--port {port}: not a port (0-65535)") from None
    listening.set_inheritable(True)
    return listening


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a model.pt (default: the champion, else outputs/model.pt)")
    parser.add_argument("--registry", type=Path, default=None,
                        help="where the champion lives (default: $MNISTFLOW_REGISTRY or registry/)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--no-metrics", action="store_true", help="no GET /metrics (and no per-request counting)")
    parser.add_argument("--no-feedback", action="store_true", help="no POST /feedback (no inbox)")
    parser.add_argument("--feedback", choices=("open", "token"), default="open",
                        help="take anonymous corrections (open), or only from clients with a token (token)")
    parser.add_argument("--feedback-tokens", type=Path, default=None,
                        help="the clients' token hashes and names, a line each (serving/clients.py)")
    parser.add_argument("--trusted-proxy", action="append", default=[],
                        help="an address or network whose X-Forwarded-For is believed (repeatable)")
    parser.add_argument("--model-name", default=MODEL_NAME,
                        help="the model's name on the Open Inference Protocol's /v2 routes (default: %(default)s)")
    parser.add_argument("--shadow-fraction", type=float, default=1.0,
                        help="the share of requests the registry's shadow also answers, off the request path "
                             "(0: none; default: %(default)s)")
    parser.add_argument("--header-seconds", type=float, default=HEADER_SECONDS,
                        help="close a connection whose request headers take longer (default: %(default)s)")
    parser.add_argument("--body-seconds", type=float, default=BODY_SECONDS,
                        help="close a connection whose request body takes longer after its headers "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    setup_logging()

    def run() -> None:
        import uvicorn

        protocol = with_deadlines(args.header_seconds, args.body_seconds) if enabled("header-deadline") else "h11"
        check_model_name(args.model_name)
        if not 0 <= args.shadow_fraction <= 1:
            raise MnistflowError(f"--shadow-fraction {args.shadow_fraction}: a share from 0 to 1")
        registry = RegistryPaths(roots(registry=args.registry).registry)
        files = choose_model(args.model, registry, RunPaths(DEFAULT_RUN_DIR))
        if args.model is not None and not args.model.exists():
            raise MnistflowError(f"--model: {args.model}: no such model file")
        # Loads the model: a bad file is one line. No model yet: unready, waiting for the champion.
        if args.feedback == "token" and args.feedback_tokens is None:
            raise MnistflowError("--feedback token: give the clients' tokens with --feedback-tokens FILE")
        tokens = read_tokens(args.feedback_tokens) if args.feedback_tokens else {}
        access = FeedbackAccess(args.feedback, tokens, check_proxies(args.trusted_proxy))
        app = create_app(files, inbox=None if args.no_feedback else Inbox(registry.inbox),
                         metrics=not args.no_metrics, access=access, model_name=args.model_name,
                         shadow=registry.shadow_model if args.shadow_fraction > 0 else None,
                         shadow_fraction=args.shadow_fraction)
        if files.why:
            log.info("%s", files.why)
        listening = bound_socket(args.host, args.port)  # before "serving": a taken port is one line
        log.info("serving %s on http://%s:%d/", files.model, args.host, args.port)

        # proxy_headers off: request.client is the socket's peer; FeedbackAccess alone believes
        # X-Forwarded-For, and only from the proxies the operator lists.
        config = uvicorn.Config(app, access_log=args.access_log, log_level="warning", proxy_headers=False,
                                http=protocol, timeout_keep_alive=KEEP_ALIVE_SECONDS)
        uvicorn.Server(config).run(sockets=[listening])

    run_main(run)


if __name__ == "__main__":
    main()
