"""The drift alarm: ``python -m flows.monitor [--service URL] [--profile PATH]``.

Reads the service's window of recent answers (``GET /monitoring/window``: no
pictures) and compares it with the champion's validation profile
(``<registry>/champion/profile.json``) by the tests of lifecycle/drift.py. It
writes a markdown artifact (``drift-report``) with a table and a plot, and
emits the Prefect event ``mnistflow.drift.detected`` (resource
``mnistflow.service``, payload: which statistics moved) when they moved, for
an automation to act on: notify, or run the retrain deployment. The deployment
``monitor`` (prefect.yaml) runs it hourly.
"""

from __future__ import annotations

import argparse
import base64
import io
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.states import Completed

from flows.cli import run_flow_command
from flows.service_client import get_from_service
from lifecycle.drift_inputs import MAX_BYTES, Window, comparable, parse, read_profile
from lifecycle.drift import DriftReport, Thresholds, compare
from mnistflow.errors import MnistflowError
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import roots
from tasks import retry_unless_user_error

EVENT = "mnistflow.drift.detected"


@task(name="read-window", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error)
def read_window(service_url: str) -> dict[str, Any] | str:
    """The service's window, read within a byte bound and checked (lifecycle/drift_inputs.py);
    or, when nothing listens there, the one line that says so (a run with nothing to watch
    is skipped, not failed: the hourly schedule must not fill a terminal with tracebacks)."""
    body = get_from_service(service_url, "/monitoring/window", MAX_BYTES)
    if isinstance(body, str):
        return body
    return parse(Window, body, f"{service_url.rstrip('/')}/monitoring/window")


def plot(profile: dict[str, Any], window: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(profile["samples"])
    figure, axes = plt.subplots(1, len(names) + 1, figsize=(3 * (len(names) + 1), 2.6))
    total = max(sum(profile["class_counts"]), 1), max(sum(window["class_counts"]), 1)
    positions = range(len(profile["classes"]))
    axes[0].bar([p - 0.2 for p in positions], [c / total[0] for c in profile["class_counts"]], 0.4, label="validation")
    axes[0].bar([p + 0.2 for p in positions], [c / total[1] for c in window["class_counts"]], 0.4, label="served")
    axes[0].set_title("predicted class", fontsize=9)
    axes[0].legend(fontsize=7)
    for axis, name in zip(axes[1:], names):
        axis.hist(profile["samples"][name], bins=30, density=True, alpha=0.5, label="validation")
        axis.hist(window["samples"][name], bins=30, density=True, alpha=0.5, label="served")
        axis.set_title(name.replace("_", " "), fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=70)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def markdown(report: DriftReport, image: str | None) -> str:
    lines = ["# Drift check", "", report.message[0].upper() + report.message[1:] + ".", ""]
    if report.statistics:
        lines += ["| statistic | test | distance | p-value | moved |", "|---|---|---|---|---|"]
        for name, s in report.statistics.items():
            test, distance = ("chi-square", s["distance"]) if name == "classes" else ("KS", s["ks"])
            lines.append(f"| {name} | {test} | {distance:.3f} | {s['p_value']:.2g} | {'**yes**' if s['moved'] else 'no'} |")
    if image:
        lines += ["", f"![served against validation](data:image/png;base64,{image})"]
    return "\n".join(lines)


@flow(name="mnist-monitor", log_prints=True)
def monitor(service_url: str = "http://127.0.0.1:8000", profile_file: str | None = None,
            registry_dir: Path | None = None, min_window: int = Thresholds.min_window) -> dict[str, Any]:
    """Compare what the service answered lately with the champion's validation profile.
    With no service at service_url, the run ends Skipped (a Completed state), in one line.

    Args:
        service_url: the running service.
        profile_file: the baseline (default: <registry>/champion/profile.json).
        registry_dir: where the champion is (default: $MNISTFLOW_REGISTRY or registry/).
        min_window: fewer images than this are too few to judge.
    """
    logger = get_run_logger()
    path = Path(profile_file) if profile_file else RegistryPaths(roots(registry=registry_dir).registry).champion_profile
    profile, window = read_profile(path), read_window(service_url)
    if isinstance(window, str):
        logger.info("%s", window)
        return Completed(name="Skipped", message=window, data={
            "drift": False, "judged": False, "moved": [], "message": window, "statistics": {}})
    comparable(profile, window, service_url)
    report = compare(profile, window, Thresholds(min_window=min_window))
    (logger.warning if report.drift else logger.info)("%s", report.message)
    create_markdown_artifact(markdown(report, plot(profile, window) if report.judged else None), key="drift-report",
                             description=report.message)
    if report.drift:
        emit_event(event=EVENT, resource={"prefect.resource.id": "mnistflow.service",
                                          "prefect.resource.name": service_url},
                   payload={"moved": report.moved, "size": report.size, "model_sha256": window.get("model_sha256"),
                            "statistics": report.statistics})
    return {"drift": report.drift, "judged": report.judged, "moved": report.moved, "message": report.message,
            "statistics": report.statistics}


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--service", default="http://127.0.0.1:8000", help="the running service's URL")
        parser.add_argument("--profile", default=None, help="the baseline (default: the champion's profile.json)")
        parser.add_argument("--registry", type=Path, default=None)
        parser.add_argument("--min-window", type=int, default=Thresholds.min_window)

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        if args.min_window < 1:
            raise MnistflowError(f"--min-window: must be at least 1 (got {args.min_window})")
        return {"service_url": args.service, "profile_file": args.profile, "registry_dir": args.registry,
                "min_window": args.min_window}

    run_flow_command(monitor, "python -m flows.monitor", __doc__,
                     lambda r, link: f"{r['message']}\n  run in the UI: {link}", add_arguments, prepare)


if __name__ == "__main__":
    main()
