"""A person decides about the quarantine, in Prefect's own way.

When intake quarantines items and is given a review time, it pauses for input
(``pause_flow_run(wait_for_input=ReviewDecision)``) after a markdown artifact
that shows each item: the picture, the claimed label, the champion's answers.
The reviewer resumes the run from the Prefect UI's form (or the API's
``resume_flow_run(id, run_input=...)``) naming the items to accept and to
reject; a timeout leaves them all quarantined. ``python -m flows.intake
--review`` lists what waits, and ``--accept ID ... --reject ID ...`` decides
from the command line through the same function.

An accepted item enters the dataset as a new increment through the gate (not
the trust rules: a person vouched for it); a rejected one stays in the
quarantine, marked. Each decision is recorded on the item: who, when, which run.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from flows.events import emit_data_added
from lifecycle import quarantine, registry
from lifecycle.intake import intake
from mnistflow.datasets import class_labels
from mnistflow.dataset_files import locate
from mnistflow.errors import MnistflowError
from mnistflow.params import Params
from mnistflow.paths import roots

# Pictures shown in one review artifact at most (each is a small inline PNG).
SHOWN = 200


class ReviewDecision(RunInput):
    """The reviewer's answer: quarantined item ids (BATCH/N) to accept and to reject."""

    reviewer: str
    accept: list[str] = []
    reject: list[str] = []


def top_three(record: dict[str, Any]) -> str:
    return ", ".join(f"{t['label']} {t['probability']:.1%}" for t in record["top"])


def review_markdown(records: list[dict[str, Any]], data_root: Path, dataset: str) -> str:
    lines = [f"# Quarantine: {len(records)} item(s) to review", "",
             "Resume this run with the ids to accept and to reject; a timeout leaves them quarantined.", "",
             "| picture | id | client | claimed | champion's top 3 | score |", "|---|---|---|---|---|---|"]
    for record in records[:SHOWN]:
        png = quarantine.picture_of(data_root, dataset, record["id"]).read_bytes()
        picture = f"![{record['id']}](data:image/png;base64,{base64.b64encode(png).decode()})"
        lines.append(f"| {picture} | `{record['id']}` | {record['client']} | {record['label']} | {top_three(record)} | "
                     f"{record['label_probability']:.2%} |")
    if len(records) > SHOWN:
        lines.append(f"\n{len(records) - SHOWN} more: `python -m flows.intake --review` lists them all.")
    return "\n".join(lines)


def await_review(records: list[dict[str, Any]], data_root: Path, dataset: str, timeout: int) -> ReviewDecision | None:
    """Show the quarantine and pause for the reviewer's decision; None when no one answered in time."""
    create_markdown_artifact(review_markdown(records, data_root, dataset), key="intake-review",
                             description="Quarantined items waiting for a person's decision")
    get_run_logger().info("paused for review of %d quarantined item(s), for at most %d s", len(records), timeout)
    try:
        return pause_flow_run(wait_for_input=ReviewDecision, timeout=timeout, key="review")
    except FlowPauseTimeout:
        get_run_logger().warning("no review within %d s: the items stay quarantined", timeout)
        return None


def apply_review(decision: ReviewDecision, params: Params, data_root: Path) -> dict[str, Any]:
    """Record the decision on each item; the accepted ones become one increment."""
    dataset, time = params.data.dataset, registry.now()
    waiting = {r["id"] for r in quarantine.pending(data_root, dataset)}
    both = set(decision.accept) & set(decision.reject)
    if both:
        raise MnistflowError(f"accept and reject: {', '.join(sorted(both))} in both")
    unknown = [i for i in [*decision.accept, *decision.reject] if i not in waiting]
    if unknown:
        raise MnistflowError(f"{', '.join(unknown)}: not waiting in the quarantine (python -m flows.intake --review "
                             "lists what is)")
    by = {"reviewer": decision.reviewer, "flow_run_id": str(flow_run.id or "local")}
    rejected = quarantine.decide(data_root, dataset, decision.reject, False, by, time)
    accepted = quarantine.decide(data_root, dataset, decision.accept, True, by, time)
    report = None
    if accepted:
        classes = class_labels(dataset)
        candidates = [quarantine.candidate_of(data_root, dataset, r, classes) for r in accepted]
        report = intake(dataset, lambda: locate(params.data, data_root), data_root, candidates,
                        [f"quarantine review by {decision.reviewer}"], time)
    if report is not None and report.increment:
        emit_data_added(dataset, report.increment, report.accepted, report.histogram)
    get_run_logger().info("review by %s: %d accepted%s, %d rejected", decision.reviewer, len(accepted),
                          f" (increment {report.increment})" if report and report.increment else "", len(rejected))
    return {"reviewer": decision.reviewer, "accepted": [r["id"] for r in accepted],
            "rejected": [r["id"] for r in rejected], "increment": report.increment if report else None,
            "refused": report.refused if report else []}


@flow(name="mnist-intake-review", log_prints=True)
def review(reviewer: str, accept: list[str], reject: list[str], params: Params | None = None,
           params_file: str = "params.yaml", data_root: Path | None = None) -> dict[str, Any]:
    """Decide about quarantined items from the command line (the same decision a paused intake takes)."""
    from flows.pipeline import resolve_params

    params = resolve_params(params, params_file)
    return apply_review(ReviewDecision(reviewer=reviewer, accept=accept, reject=reject), params,
                        roots(data_root=data_root).data_root)


def pending_table(records: list[dict[str, Any]], data_root: Path, dataset: str) -> str:
    lines = [f"{len(records)} quarantined item(s) wait for review in {quarantine.quarantine_dir(data_root, dataset)}:"]
    for r in records:
        lines.append(f"  {r['id']}  {r['client']}  claimed {r['label']}  champion: {top_three(r)}  (score {r['label_probability']:.3g}; "
                     f"picture {quarantine.picture_of(data_root, dataset, r['id'])})")
    return "\n".join(lines + ["decide: python -m flows.intake --review --reviewer NAME --accept ID ... --reject ID ..."])


def main() -> None:
    import argparse

    from flows.cli import run_flow_command
    from mnistflow.entry import run_main
    from mnistflow.params import load_params

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--review", action="store_true", help="list the quarantine, or decide with --accept/--reject")
        parser.add_argument("--accept", nargs="+", default=[], metavar="ID", help="quarantined items to accept")
        parser.add_argument("--reject", nargs="+", default=[], metavar="ID", help="quarantined items to reject")
        parser.add_argument("--reviewer", default=None, help="who decides (kept with each decision)")
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        parser.add_argument("--data-root", type=Path, default=None,
                            help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")

    parser = argparse.ArgumentParser(prog="python -m flows.intake")
    add_arguments(parser)
    args, _ = parser.parse_known_args()
    if not args.accept and not args.reject:
        def show() -> None:
            params, data_root = load_params(args.params), roots(data_root=args.data_root).data_root
            records = quarantine.pending(data_root, params.data.dataset)
            print(pending_table(records, data_root, params.data.dataset) if records
                  else f"nothing waits for review in {quarantine.quarantine_dir(data_root, params.data.dataset)}")
        run_main(show)
        return

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        if not args.reviewer or not args.reviewer.strip():
            raise MnistflowError("--reviewer: say who decides (it is kept with each decision)")
        return {"reviewer": args.reviewer, "accept": args.accept, "reject": args.reject,
                "params": load_params(args.params), "params_file": str(args.params), "data_root": args.data_root}

    run_flow_command(review, "python -m flows.intake", __doc__,
                     lambda r, link: f"{len(r['accepted'])} accepted" + (f" (increment {r['increment']})" if
                                     r["increment"] else "") + f", {len(r['rejected'])} rejected\n  run in the UI: {link}",
                     add_arguments, prepare)
