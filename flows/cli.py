"""``python -m flows.X``: the command-line plumbing shared by the flows.

Validate the params before Prefect starts, run the flow, and turn a user's
mistake into one line (mnistflow.entry); Prefect's own logging of a failed task
loses its traceback when the cause is a user's mistake.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from flows.server import api_settings
from mnistflow.entry import run_main
from mnistflow.device import select_device
from mnistflow.errors import MnistflowError
from mnistflow.params import load_params
from mnistflow.paths import DEFAULT_RUN_DIR, RunPaths, roots
from mnistflow.preflight import check_run_folder, preflight
from tasks import api_unreachable, exception_chain

# Retries of each Prefect API call from a command-line run (Prefect's default is 5, a
# minute of backoff per call once the server is gone).
API_RETRIES = 2


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a failed task with its traceback; for a user's mistake, or a server
    gone, one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # A user's mistake, an API gone mid-run (end_if_api_gone says it in one line), or
        # a signal under another error (stopped_by_signal says it in one line).
        if exc is not None and (isinstance(exc, MnistflowError) or api_unreachable(exc) or signal_under(exc)):
            record.exc_info, record.exc_text = None, None
        return True


def signal_under(exc: BaseException) -> BaseException | None:
    """SIGTERM or Ctrl-C, as Prefect raised it, at or under ``exc``."""
    from prefect.exceptions import TerminationSignal

    return next((e for e in exception_chain(exc) if isinstance(e, (KeyboardInterrupt, TerminationSignal))), None)


def stopped_by_signal(exc: BaseException) -> None:
    """A run that SIGTERM stopped ends as one, in one line (mnistflow.entry), even when
    the signal landed inside a library that wrapped it in its own error (pydantic,
    serialising the run's context for a Dask worker, raises a serialisation error with
    Prefect's TerminationSignal as its cause), so Prefect never saw the signal itself."""
    from prefect.exceptions import TerminationSignal

    from mnistflow.entry import Terminated, terminated

    signal = signal_under(exc)
    if signal is None or signal is exc and isinstance(exc, KeyboardInterrupt):
        return
    if isinstance(signal, (Terminated, TerminationSignal)):
        terminated.set()
        raise Terminated() from None
    raise KeyboardInterrupt() from None


def show_own_logs() -> None:
    """mnistflow's own lines (a mirror retried, a wait for DVC) on the terminal too,
    where Prefect shows its run logs, once each: not also through the root logger's
    console handler, which Prefect gives every WARNING. (Its API handler, which puts
    them in the run's logs, is on the mnistflow logger itself: prefect.toml's
    extra_loggers.)"""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s",
                                           "%H:%M:%S"))
    own = logging.getLogger("mnistflow")
    own.addHandler(handler)
    own.propagate = False


def quiet_shutdown() -> None:
    """Warnings that every clean end of a command printed, none of them the user's news:
    Prefect's "EventsWorker - Still processing items" while it sends the run's last
    events (they are sent), and Dask's "nanny ... killing" as a sweep's local cluster
    closes its worker processes (the sweep closes them; its trials are done)."""
    for name in ("EventsWorker", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_user_errors() -> None:
    hide = _HideUserErrorTracebacks()
    loggers = [logging.getLogger()] + [
        logger for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("prefect") and isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            handler.addFilter(hide)


def flow_run_link(state: Any) -> str:
    """Where the UI shows this flow run."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{ui}/runs/flow-run/{state.state_details.flow_run_id}" if ui else "(no UI)"


def _preload(paths: RunPaths, params_digest: str) -> None:
    from mnistflow.plots import make_plots  # noqa: F401  (matplotlib: the plot task's import)
    from mnistflow.export import export_pending, warm_up_exporter
    from mnistflow.train import warm_up_optimizers

    # A finished run started again (`make run` twice) neither trains nor exports:
    # these 2-3 s of imports would only compete for the GIL with the tasks that run.
    if export_pending(paths, params_digest):
        warm_up_optimizers()  # needed first: by the first training stage
        warm_up_exporter()


def preload_in_background(paths: RunPaths, params_digest: str) -> None:
    """Import what the flow's tasks will need later (matplotlib; torch._dynamo through
    the first optimizer and the ONNX exporter, when the run will train and export) on
    a thread, while this process spends its first seconds waiting on the Prefect
    server to set the flow run up, and then while training runs."""
    threading.Thread(target=_preload, args=(paths, params_digest), name="mnistflow-preload", daemon=True).start()


def end_if_api_gone(exc: BaseException) -> None:
    """A run whose Prefect API died ends now, in one line: every file it finished is
    already in place (each is renamed in whole), and Prefect's log and event workers
    would otherwise spend minutes at exit retrying a server that is gone."""
    import os
    import sys

    from prefect.settings import PREFECT_API_URL

    from flows.server import unreachable
    from prefect.exceptions import TerminationSignal

    from mnistflow.entry import Terminated, terminated

    url = PREFECT_API_URL.value()
    if isinstance(exc, MnistflowError) and not api_unreachable(exc) or not url or unreachable(url, 2.0) is None:
        return
    signal = signal_under(exc)  # a signal may lie under the API error that reporting it raised
    sigterm = terminated.is_set() or isinstance(signal, (Terminated, TerminationSignal))
    stopped = "terminated (SIGTERM)" if sigterm else (
        "interrupted" if signal is not None else f"stopped ({type(exc).__name__}: {str(exc)[:120]})")
    print(f"mnistflow: error: the Prefect API at {url} stopped answering mid-run, and the run {stopped}; every file "
          "it finished is kept, the last checkpoint included: start the server again and rerun to resume",
          file=sys.stderr, flush=True)
    if "pytest" not in sys.modules:
        sys.stdout.flush()
        os._exit(143 if sigterm else 130 if signal is not None else 2)


def run_flow_command(flow_fn: Callable[..., Any], prog: str, description: str,
                     summary: Callable[[Any, str], str], add_arguments: Callable[[argparse.ArgumentParser], None],
                     prepare: Callable[[argparse.Namespace], dict[str, Any]]) -> None:
    """The one command-line path of every flow: parse (``add_arguments``), check what
    can be checked before Prefect starts and make the flow's arguments (``prepare``),
    run ``flow_fn`` on the Prefect API (flows.server), print ``summary(result, link
    to the run in the UI)``. A user's mistake anywhere is one line (mnistflow.entry)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--heartbeat", action="store_true",
                        help="send flow-run heartbeats (off by default for a run started by hand)")
    args = parser.parse_args()

    def run() -> None:
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        kwargs = prepare(args)  # a bad params or sweep file fails here, before Prefect starts
        quiet_user_errors()
        show_own_logs()
        quiet_shutdown()
        # Heartbeats let a server notice a run whose worker died (zombie detection).
        # A run started by hand has no worker to lose, and the heartbeat thread's
        # 1-second sleep delays the end of every flow run by up to a second.
        heartbeat = {} if args.heartbeat else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        # Few retries of a refused connection: a server gone mid-run ends the run in
        # seconds, in one line, instead of every call retrying for a minute. (A server
        # that is slow to answer still gets PREFECT_API_REQUEST_TIMEOUT.)
        with temporary_settings({**api_settings(), **heartbeat, PREFECT_CLIENT_MAX_RETRIES: API_RETRIES}):
            try:
                state = flow_fn(**kwargs, return_state=True)
                link = flow_run_link(state)
                result = state.result()  # raises the flow's exception: MnistflowError -> one line
            except BaseException as exc:
                end_if_api_gone(exc)
                stopped_by_signal(exc)
                raise
        print(summary(result, link))

    run_main(run)


def run_from_command_line(flow_fn: Callable[..., Any], prog: str, description: str,
                          summary: Callable[[Any, str], str], with_registry: bool = False) -> None:
    """A pipeline flow's command line: --params, --run-dir, --data-root (and --registry)."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                            help="the run's folder (default: outputs/)")
        parser.add_argument("--data-root", type=Path, default=None,
                            help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")
        if with_registry:
            parser.add_argument("--registry", type=Path, default=None,
                                help="champion and run records (default: $MNISTFLOW_REGISTRY or registry/)")
        if with_registry:
            parser.add_argument("--no-dvc-push", action="store_true",
                                help="version the run with DVC and git, but push nothing to the DVC remote")
            parser.add_argument("--no-dvc-version", action="store_true",
                                help="no dvc commit, no push, no git commit of dvc.lock")
            parser.add_argument("--promotion-margin", type=float, default=0.0,
                                help="the challenger's test accuracy must reach the champion's plus this")
            parser.add_argument("--warm-start", action="store_true",
                                help="fine-tune the champion for train.warm_stages (from scratch when there is none)")
            parser.add_argument("--promotion", choices=("champion", "shadow"), default="champion",
                                help="where a challenger that passes goes: into service, or first beside the "
                                     "champion as its shadow (judged by python -m flows.judge_shadow)")
            parser.add_argument("--min-recent-accuracy", type=float, default=None,
                                help="hold a challenger for review under this accuracy on the new items' "
                                     "held-out part (default 0.3)")
        parser.add_argument("--from-scratch", action="store_true",
                            help="train from the first epoch even when the run folder holds a finished run")

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        params = load_params(args.params)
        preload_in_background(RunPaths(args.run_dir), params.digest())
        registry = args.registry if with_registry else None
        where = roots(data_root=args.data_root, registry=registry)
        # The device, chosen once here and handed to the flow, and what fits on it: a
        # run that cannot work is one line before Prefect starts.
        check_run_folder(args.run_dir, where.data_root, where.registry)
        device = select_device(params.device)
        preflight(params, [args.run_dir, *([where.registry] if with_registry else [])], device, data_root=where.data_root)
        kwargs = {"params": params, "params_file": str(args.params), "run_dir": args.run_dir,
                  "data_root": args.data_root, "device": device, "from_scratch": args.from_scratch}
        if not with_registry:
            return kwargs
        recent = {} if args.min_recent_accuracy is None else {"min_recent_accuracy": args.min_recent_accuracy}
        return {**kwargs, "registry_dir": registry, "dvc_push": not args.no_dvc_push,
                "dvc_version": not args.no_dvc_version, "promotion_margin": args.promotion_margin,
                "warm_start": args.warm_start, "promotion": args.promotion, **recent}

    run_flow_command(flow_fn, prog, description, summary, add_arguments, prepare)
