"""Intake: new labelled images, checked, become one increment of the dataset.

    python -m flows.intake SOURCE... [--inbox] [--params params.yaml] [--data-root data]
    python -m flows.intake --review [--reviewer NAME --accept ID ... --reject ID ...]
    python -m flows.intake --retract INCREMENT | --retract-client CLIENT --reason "..."

A SOURCE is a folder of class folders (``3/``, ``7/``, or the class names) of
pictures in any format, size or colour; a CSV of ``path,label``; or an IDX
``*images-idx3-ubyte`` file with its ``*labels-idx1-ubyte`` beside it.
``--inbox`` adds the service's feedback inbox (``<registry>/inbox``).

Pictures are prepared as the service prepares what it predicts on; every item
then passes the gate (lifecycle/gate.py): a known class, no exact copy of any
image the dataset holds, no near-copy of a test image; then the trust rules
(lifecycle/trust.py): the champion's probability of its label, against the
champion's own threshold (under it: quarantined, for a person's review), and
its client's share (over it: it waits in the inbox). The accepted ones become
one immutable increment, ``<data-root>/<dataset>/increments/<id>/``; every
refused, quarantined or waiting one is listed with its reason (the report, and
table artifacts). The
flow then emits the Prefect event ``mnistflow.data.added``, on which the
``retrain`` deployment's trigger fires (prefect.yaml). Sources are never changed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from flows.cli import run_flow_command
from flows.events import emit_data_added
from flows.review import apply_review, await_review
from flows.pipeline import resolve_params
from lifecycle import registry
from lifecycle.intake import Screening, dataset_shape, take_from_inbox
from lifecycle.intake_sources import Limits
from lifecycle.trust import TrustPolicy, champion_threshold
from mnistflow.inference import Predictor
from mnistflow.datasets import class_labels
from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import roots
from tasks.download import download_task
from tasks.intake import gate_and_write_task, read_sources_task

@flow(name="mnist-intake", log_prints=True)
def intake(sources: list[str], inbox: bool = False, params: Params | None = None,
           params_file: str = "params.yaml", data_root: Path | None = None,
           registry_dir: Path | None = None, max_items: int = Limits.items,
           min_label_probability: float | None = None,
           client_share: float = TrustPolicy.client_share, client_cap: int = TrustPolicy.client_cap,
           review_timeout: int = 0, csv_paths_outside: bool = False) -> dict[str, Any]:
    """Check new labelled images and add the accepted ones to the dataset as one increment.

    Args:
        sources: folders of class folders, CSVs of path,label, or IDX images files (labels beside them).
        inbox: also take the service's feedback inbox (<registry>/inbox).
        params: the pipeline configuration; its data section names the dataset. Overrides params_file.
        params_file: read when params is not given.
        data_root: where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/).
        registry_dir: where the inbox is (default: $MNISTFLOW_REGISTRY or registry/).
        max_items: items one intake reads at most; a larger batch is refused whole.
        min_label_probability: quarantine an item whose claimed label the champion gives less
            than this probability (default: the champion's calibrated threshold, lifecycle/trust.py;
            0: quarantine nothing).
        client_share: the most of the items added since the champion that one feedback client supplies.
        client_cap: the most items one feedback client adds between two champions.
        review_timeout: seconds to pause for a person's review of quarantined items (0: do not
            pause; review later with python -m flows.intake --review).
        csv_paths_outside: let a CSV source name pictures outside its own folder (off: refused, each listed).
    """
    logger = get_run_logger()
    params = resolve_params(params, params_file)
    where = roots(data_root=data_root, registry=registry_dir)
    if not sources and not inbox:
        raise MnistflowError("sources: give at least one source (or --inbox)")
    files = download_task(params.data, where.data_root)  # the base dataset must be there to gate against
    shape = dataset_shape(files)
    inbox_dir = RegistryPaths(where.registry).inbox if inbox else None
    candidates = read_sources_task([Path(s) for s in sources], class_labels(files.dataset), shape,
                                   Limits(items=max_items, csv_paths_outside=csv_paths_outside), inbox_dir)
    policy = TrustPolicy(min_label_probability, client_share, client_cap)
    report = gate_and_write_task(params.data, where.data_root, candidates, [str(s) for s in sources]
                                 + ([str(inbox_dir)] if inbox_dir else []), registry.now(),
                                 screening(files.dataset, RegistryPaths(where.registry), policy))
    if inbox_dir is not None:
        taken = take_from_inbox(inbox_dir, candidates, report.increment or "refused-" + registry.now().replace(":", ""),
                                report.waiting)
        if taken is not None:
            logger.info("inbox items read moved to %s", taken)
    for kind, items in (("refused", report.refused), ("quarantined", report.quarantined), ("waits", report.waiting)):
        for item in items:
            logger.warning("%s %s: %s", kind, item["origin"], item["reason"])
        create_table_artifact(key=f"intake-{kind}", description=f"{kind.capitalize()} items of this intake: "
                              f"{report.summary()}", table=[{k: str(v) for k, v in item.items()} for item in items]
                              or [{"origin": "-", "reason": f"none {kind}"}])
    if report.note:
        logger.info("%s", report.note)
    logger.info("%s", report.summary())
    if report.increment:
        emit_data_added(report.dataset, report.increment, report.accepted, report.histogram)
    result = asdict(report)
    if report.quarantined and review_timeout > 0:
        decision = await_review(report.quarantined, where.data_root, report.dataset, review_timeout)
        result["review"] = decision and apply_review(decision, params, where.data_root)
    return result


def screening(dataset: str, registry_paths: RegistryPaths, policy: TrustPolicy) -> Screening:
    """The champion that scores new labels (checked whole by read_champion), if it knows this dataset's classes."""
    champion = registry.read_champion(registry_paths)
    predictor = Predictor.load(registry_paths.champion_model) if champion else None
    if predictor is not None and predictor.labels != class_labels(dataset):
        get_run_logger().warning("the champion's classes are not %s's: no label is scored", dataset)
        predictor = None
    # A champion promoted before its evaluation held a threshold (or with none beside it) gets the fallback.
    found = predictor is not None and registry_paths.champion_evaluation.exists()
    evaluation = json.loads(registry_paths.champion_evaluation.read_text()) if found else {}
    threshold = champion_threshold(evaluation, policy)
    if predictor is not None:
        get_run_logger().info("labels scored by the champion (version %s); quarantined under %.3g",
                              champion.get("version"), threshold)
    return Screening(predictor, threshold, tuple((champion or {}).get("increments") or ()), policy)


def _summary(result: dict[str, Any], link: str) -> str:
    lines = [f"{r['origin']}: {kind}: {r['reason']}" for kind in ("refused", "quarantined", "waiting")
             for r in result.get(kind) or []]
    held = (f", {len(result['quarantined'])} quarantined (python -m flows.intake --review)" if result["quarantined"]
            else "") + (f", {len(result['waiting'])} waiting in the inbox for their client's share"
                        if result["waiting"] else "")
    head = (f"{result['dataset']}: {result['accepted']} accepted, {len(result['refused'])} refused{held}; "
            + (f"increment {result['increment']} in {result['directory']}" if result["increment"]
               else "nothing added"))
    clients = ", ".join(f"{c} {n}" for c, n in (result.get("clients") or {}).items())
    return "\n".join(lines + [head] + ([f"  per client: {clients}"] if clients else [])
                     + ([f"  {result['note']}"] if result.get("note") else []) + [f"  run in the UI: {link}"])


def main() -> None:
    import sys

    words = {a.split("=")[0] for a in sys.argv[1:]}
    if words & {"--retract", "--retract-client"}:
        from flows.retract import main as retract_main

        return retract_main()
    if "--review" in words:
        from flows.review import main as review_main

        return review_main()
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sources", nargs="*", type=Path, help="folders, CSVs or IDX images files")
        parser.add_argument("--inbox", action="store_true", help="also take the service's feedback inbox")
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        parser.add_argument("--data-root", type=Path, default=None,
                            help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")
        parser.add_argument("--registry", type=Path, default=None,
                            help="where the feedback inbox is (default: $MNISTFLOW_REGISTRY or registry/)")
        parser.add_argument("--max-items", type=int, default=Limits.items,
                            help=f"items one intake reads at most (default {Limits.items:,})")
        parser.add_argument("--review-timeout", type=int, default=0,
                            help="seconds to pause for a review of quarantined items in the Prefect UI "
                                 "(default 0: no pause; decide later with --review)")
        parser.add_argument("--csv-paths-outside", action="store_true",
                            help="let a CSV name pictures outside its own folder (default: refused)")
        parser.add_argument("--min-label-probability", type=float, default=None,
                            help="quarantine under this probability of the claimed label (default: the "
                                 "champion's calibrated threshold)")

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        for source in args.sources:
            if not source.exists():
                raise MnistflowError(f"{source}: no such file or folder")
        if not args.sources and not args.inbox:
            raise MnistflowError("give at least one SOURCE (a folder, a .csv or an IDX images file), or --inbox")
        if args.max_items < 1:
            raise MnistflowError(f"--max-items: must be at least 1 (got {args.max_items})")
        if args.review_timeout < 0:
            raise MnistflowError(f"--review-timeout: seconds, 0 or more (got {args.review_timeout})")
        if args.min_label_probability is not None and not 0 <= args.min_label_probability <= 1:
            raise MnistflowError(f"--min-label-probability: a probability, 0 to 1 (got {args.min_label_probability})")
        return {"sources": [str(s) for s in args.sources], "inbox": args.inbox,
                "params": load_params(args.params), "params_file": str(args.params),
                "data_root": args.data_root, "registry_dir": args.registry, "max_items": args.max_items,
                "review_timeout": args.review_timeout, "min_label_probability": args.min_label_probability,
                "csv_paths_outside": args.csv_paths_outside}

    def summary(result: dict[str, Any], link: str) -> str:
        if not result["increment"] and not result["quarantined"] and not result["waiting"]:
            # Nothing was added: a script must see it (exit 2), each item's reason above the error.
            for refusal in result["refused"]:
                print(f"{refusal['origin']}: refused: {refusal['reason']}")
            raise MnistflowError(f"{result['dataset']}: nothing added: all {len(result['refused'])} items "
                                 f"were refused (each listed above; run in the UI: {link})")
        review = result.get("review")
        reviewed = (f"\nreview by {review['reviewer']}: {len(review['accepted'])} accepted"
                    + (f" (increment {review['increment']})" if review["increment"] else "")
                    + f", {len(review['rejected'])} rejected") if review else ""
        return _summary(result, link) + reviewed

    run_flow_command(intake, "python -m flows.intake", __doc__, summary, add_arguments, prepare)


if __name__ == "__main__":
    main()
