"""Put an earlier champion back: ``python -m flows.rollback [--to N] [--reason TEXT]``.

``--list`` shows every version (lifecycle.versions) with its metrics and
digests, and which one is serving, without starting Prefect. Otherwise the
flow installs version N (default: the one before the champion's) atomically,
model.pt last, so a running service answers with it from its next request;
it records why and by whom (this flow run) in the champion's record and in
the registry's runs/. The next retrain judges its challenger against the
restored champion. The deployment ``rollback`` (prefect.yaml) runs the same.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import deployment, flow_run

from flows.cli import run_flow_command
from lifecycle import registry, versions
from mnistflow.entry import run_main
from mnistflow.errors import MnistflowError
from lifecycle.registry_paths import RegistryPaths
from mnistflow.paths import roots


@flow(name="mnist-rollback", log_prints=True)
def rollback(to: int | None = None, reason: str = "rolled back by hand",
             registry_dir: Path | None = None) -> dict[str, Any]:
    """Install an earlier champion version.

    Args:
        to: the version to put back (default: the one before the champion's).
        reason: why, kept in the records.
        registry_dir: champion, versions and run records (default: $MNISTFLOW_REGISTRY or registry/).
    """
    paths = RegistryPaths(roots(registry=registry_dir).registry)
    by = {"flow_run_id": str(flow_run.id or ""), "flow_run_name": flow_run.name,
          "deployment": deployment.name}
    event = registry.rollback(paths, to, reason, by)
    message = (f"rolled back from version {event['from_version']} to version {event['to_version']} "
               f"(model sha256 {event['model_sha256'][:12]}): {reason}")
    get_run_logger().info("%s", message)
    create_markdown_artifact(f"# Rollback\n\n{message.capitalize()}.", key="rollback")
    return event


def version_table(rows: list[dict[str, Any]]) -> str:
    """Every version, a line each, in columns as wide as their widest value; the champion
    (the version the service answers with) is marked in its own column."""
    def pct(value: float | None) -> str:
        return f"{100 * value:.2f}%" if value is not None else "-"

    header = ["version", "champion", "time", "test", "recent", "data", "params", "model sha256"]
    table = []
    for r in rows:
        mark = "champion" if r["serving"] else ""
        if "damaged" in r:
            table.append([str(r["version"]), mark, f"damaged: {r['damaged']}"])
            continue
        table.append([str(r["version"]), mark, r["time"] or "-", pct(r["test_accuracy"]), pct(r["recent_accuracy"]),
                      (r["data_digest"] or "-")[:12], (r["params_digest"] or "-")[:12], (r["model_sha256"] or "-")[:12]])
    widths = [max(len(line[i]) for line in [header, *table] if i < len(line) and len(line) > 3)
              for i in range(len(header))]
    right = {0, 3, 4}  # numbers

    def line(cells: list[str]) -> str:
        if len(cells) == 3:  # a damaged version: its reason runs on
            return "  ".join([cells[0].rjust(widths[0]), cells[1].ljust(widths[1]), cells[2]])
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join(line(cells) for cells in [header, *table])


def history_table(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        test = ((e.get("metrics") or {}).get("test") or {}).get("accuracy")
        trigger = e.get("trigger") or {}
        cause = f"trigger: increment {trigger.get('increment')}" if trigger.get("increment") else (
            f"by {e['by'].get('flow_run_name') or e['by'].get('flow_run_id') or 'hand'}" if e.get("by") else "")
        which = f"version {e['version']:>3}" if "version" in e else f"model {str(e.get('model_sha256'))[:11]}"
        lines.append(f"{e['time']}  {e['event']:<9} {which}"
                     + (f" (from {e['from_version']})" if e.get("from_version") else "")
                     + (f"  test {100 * test:.2f}%" if test is not None else "")
                     + f"  {e.get('reason') or ''}" + (f"  [{cause}]" if cause else ""))
    return "\n".join(lines)


def registry_report(args: argparse.Namespace) -> str:
    """--list, --history or --at: read-only answers from the registry."""
    paths = RegistryPaths(roots(registry=args.registry).registry)
    if args.at is not None:
        try:
            when = datetime.fromisoformat(args.at)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise MnistflowError(f"--at: {args.at!r} is not an ISO 8601 time with its time zone "
                                 "(e.g. 2026-12-01T12:00:00+00:00)")
        entry = registry.serving_at(paths, when)
        if entry is None:
            raise MnistflowError(f"--at: no version served at {args.at} (the history starts later, or is empty)")
        return f"version {entry['version']} served at {args.at} (since {entry['time']}: {entry['event']})"
    if args.history:
        entries = registry.read_history(paths)
        if not entries:
            raise MnistflowError(f"no history in {registry.history_path(paths)}: nothing promoted yet")
        return history_table(entries)
    rows = versions.list_versions(paths)
    if not rows:
        raise MnistflowError(f"no versions in {versions.versions_dir(paths)}")
    return version_table(rows)


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--to", type=int, default=None, help="the version to put back (default: the previous)")
        parser.add_argument("--reason", default="rolled back by hand", help="why (kept in the records)")
        parser.add_argument("--registry", type=Path, default=None,
                            help="champion and versions (default: $MNISTFLOW_REGISTRY or registry/)")
        parser.add_argument("--list", action="store_true", help="list the versions and exit")
        parser.add_argument("--history", action="store_true",
                            help="print every promotion and rollback (time, version, reason, metrics, trigger) and exit")
        parser.add_argument("--at", default=None, metavar="TIME",
                            help="name the version that served at TIME (ISO 8601, with its time zone) and exit")

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        if args.to is not None and args.to < 1:
            raise MnistflowError(f"--to: a version number is 1 or more (got {args.to})")
        return {"to": args.to, "reason": args.reason, "registry_dir": args.registry}

    import sys

    if {"--list", "--history", "--at"} & {a.split("=")[0] for a in sys.argv[1:]}:
        parser = argparse.ArgumentParser(prog="python -m flows.rollback")
        add_arguments(parser)
        args = parser.parse_args()
        run_main(lambda: print(registry_report(args)))
        return
    run_flow_command(rollback, "python -m flows.rollback", __doc__,
                     lambda r, link: f"version {r['to_version']} is the champion again (was {r['from_version']})"
                                     f"\n  run in the UI: {link}", add_arguments, prepare)


if __name__ == "__main__":
    main()
