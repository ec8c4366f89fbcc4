"""Judge the shadow on live traffic: ``python -m flows.judge_shadow [--service URL] [--discard]``.

A retrain run with ``promotion: shadow`` installs a challenger that passed the
test set as ``<registry>/shadow`` (lifecycle.shadow); the service answers a
share of its requests with it too, off the request path, and counts how often
it agreed with the champion and how sure each was (``GET /monitoring/shadow``).
This flow reads those statistics and, once at least ``min_images`` images were
shadowed:

- promotes the shadow when the agreement is at least ``min_agreement`` and its
  mean confidence at most ``max_confidence_drop`` under the champion's: it
  becomes the next version and the champion, and its record holds both
  judgements (the test set's and the live one);
- otherwise discards it (the history says why).

With fewer images it waits (the run says how many); with no shadow, or no
service, it is skipped. The deployment ``judge-shadow`` (prefect.yaml) runs it
every ten minutes once its schedule is resumed; ``--discard`` takes a shadow
away by hand.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed

from flows.cli import run_flow_command
from flows.service_client import get_from_service
from lifecycle import registry, shadow
from lifecycle.registry_paths import RegistryPaths
from mnistflow.errors import MnistflowError
from mnistflow.paths import roots
from tasks import retry_unless_user_error

DEFAULTS = shadow.Thresholds()


@task(name="read-shadow-stats", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error)
def read_live(service_url: str) -> dict[str, Any] | str:
    body = get_from_service(service_url, "/monitoring/shadow", shadow.MAX_BYTES)
    if isinstance(body, str):
        return body
    return shadow.parse_live(body, f"{service_url.rstrip('/')}/monitoring/shadow")


def skipped(message: str) -> Completed:
    get_run_logger().info("%s", message)
    return Completed(name="Skipped", message=message, data={"verdict": "skip", "message": message})


@flow(name="mnist-judge-shadow", log_prints=True)
def judge_shadow(service_url: str = "http://127.0.0.1:8000", registry_dir: Path | None = None,
                 min_images: int = DEFAULTS.min_images, min_agreement: float = DEFAULTS.min_agreement,
                 max_confidence_drop: float = DEFAULTS.max_confidence_drop, discard: bool = False) -> Any:
    """Promote or discard the shadow on what the service saw it answer.

    Args:
        service_url: the running service that holds the shadow.
        registry_dir: the champion and the shadow (default: $MNISTFLOW_REGISTRY or registry/).
        min_images: shadowed images before any judgement; fewer: wait.
        min_agreement: the share of images where the shadow gave the champion's class.
        max_confidence_drop: how far the shadow's mean top-1 probability may sit under the champion's.
        discard: discard the shadow now, without asking the service.
    """
    logger = get_run_logger()
    registry_paths = RegistryPaths(roots(registry=registry_dir).registry)
    record = shadow.read_shadow(registry_paths)
    if record is None:
        return skipped(f"no shadow in {registry_paths.shadow}: nothing to judge")
    if discard:
        shadow.discard_shadow(registry_paths, {"verdict": "discard", "reason": "discarded by hand"})
        return {"verdict": "discard", "message": "the shadow is discarded (by hand)"}
    live = read_live(service_url)
    if isinstance(live, str):
        return skipped(live)
    if live["shadow_sha256"] != record["model_sha256"]:
        return skipped(f"the service at {service_url} does not hold this shadow yet "
                       f"({record['model_sha256'][:12]}); it loads it at its next request")
    thresholds = shadow.Thresholds(min_images, min_agreement, max_confidence_drop)
    verdict, why = shadow.judge(live, thresholds)
    judgement = {"verdict": verdict, "reason": why, "time": registry.now(), "service_url": service_url,
                 "thresholds": asdict(thresholds), **live}
    if verdict == "wait":
        logger.info("waiting: %s", why)
        return {"verdict": verdict, "message": f"waiting: {why}"}
    if verdict == "promote":
        version = shadow.promote_shadow(registry_paths, judgement)
        message = f"the shadow is the champion, version {version}: {why}"
    else:
        shadow.discard_shadow(registry_paths, judgement)
        message = f"the shadow is discarded: {why}"
    logger.info("%s", message)
    create_markdown_artifact(f"# Shadow judged\n\n{message}.\n\nOn the test set: {record.get('reason')}.",
                             key="shadow-judgement", description=message)
    return {"verdict": verdict, "message": message, "judgement": judgement}


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--service", default="http://127.0.0.1:8000", help="the running service's URL")
        parser.add_argument("--registry", type=Path, default=None)
        parser.add_argument("--min-images", type=int, default=DEFAULTS.min_images)
        parser.add_argument("--min-agreement", type=float, default=DEFAULTS.min_agreement)
        parser.add_argument("--max-confidence-drop", type=float, default=DEFAULTS.max_confidence_drop)
        parser.add_argument("--discard", action="store_true", help="discard the shadow now")

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        if args.min_images < 1:
            raise MnistflowError(f"--min-images: at least 1 (got {args.min_images})")
        for flag, value in (("--min-agreement", args.min_agreement), ("--max-confidence-drop", args.max_confidence_drop)):
            if not 0 <= value <= 1:
                raise MnistflowError(f"{flag}: a share from 0 to 1 (got {value})")
        return {"service_url": args.service, "registry_dir": args.registry, "min_images": args.min_images,
                "min_agreement": args.min_agreement, "max_confidence_drop": args.max_confidence_drop,
                "discard": args.discard}

    run_flow_command(judge_shadow, "python -m flows.judge_shadow", __doc__,
                     lambda r, link: f"{r['message']}\n  run in the UI: {link}", add_arguments, prepare)


if __name__ == "__main__":
    main()
