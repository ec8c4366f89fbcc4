"""Take a bad lesson out: increments, or one client's items, leave the training data.

    python -m flows.intake --retract INCREMENT [--retract INCREMENT ...] --reason "..."
    python -m flows.intake --retract-client CLIENT --reason "..."

The retracted items leave ``<data-root>/<dataset>/increments/`` as a new data
version and are kept aside in ``<data-root>/retracted/<dataset>/``
(lifecycle/retraction.py). The flow emits ``mnistflow.data.retracted``, on which
the retrain deployment's trigger fires too: the next retrain trains without
them, and never warm-starts from a model that learned from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.cli import run_flow_command
from flows.events import DATA_RETRACTED, emit_data_event
from flows.pipeline import resolve_params
from lifecycle import registry
from lifecycle.retraction import retract
from mnistflow.dataset_files import locate
from mnistflow.errors import MnistflowError
from mnistflow.params import Params, load_params
from mnistflow.paths import roots


@flow(name="mnist-retract", log_prints=True)
def retraction(increments: list[str], client: str | None = None, reason: str = "", params: Params | None = None,
               params_file: str = "params.yaml", data_root: Path | None = None) -> dict[str, Any]:
    """Retract increments whole, and a client's items from every increment.

    Args:
        increments: increment ids to take out whole.
        client: a client whose every item is taken out (its increments rewritten without them).
        reason: why, kept with the retracted items and in the new increments' manifests.
        params: the pipeline configuration; its data section names the dataset. Overrides params_file.
        params_file: read when params is not given.
        data_root: where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/).
    """
    if not increments and client is None:
        raise MnistflowError("--retract or --retract-client: name what to take out")
    if not reason.strip():
        raise MnistflowError("--reason: say why (it is kept with the retracted items)")
    params = resolve_params(params, params_file)
    where = roots(data_root=data_root)
    note = {"reason": reason, "by": {"flow_run_id": str(flow_run.id or "local"), "flow_run_name": flow_run.name}}
    done = retract(lambda: locate(params.data, where.data_root), where.data_root, params.data.dataset, increments, client,
                   note, registry.now())
    message = (f"retracted {done['items']} item(s): increments {', '.join(done['retracted'])}"
               + (f", rewritten as {', '.join(done['replaced_by'].values())}" if done["replaced_by"] else "")
               + f"; kept aside in {where.data_root}/retracted/{params.data.dataset}/. Reason: {reason}")
    get_run_logger().info("%s", message)
    create_markdown_artifact(f"# Retraction\n\n{message}", key="retraction")
    # The same payload keys as mnistflow.data.added's: the retrain trigger's template reads them.
    emit_data_event(DATA_RETRACTED, params.data.dataset,
                    {"increment": ",".join(done["retracted"]), "count": done["items"], "classes": {},
                     "client": client, "reason": reason})
    return done


def main() -> None:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--retract", action="append", default=[], metavar="INCREMENT",
                            help="an increment id to take out whole (repeatable)")
        parser.add_argument("--retract-client", default=None, metavar="CLIENT",
                            help="take every item of this client out")
        parser.add_argument("--reason", default="", help="why (required; kept with the retracted items)")
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        parser.add_argument("--data-root", type=Path, default=None,
                            help="where verified datasets live (default: $MNISTFLOW_DATA_ROOT or data/)")

    def prepare(args: argparse.Namespace) -> dict[str, Any]:
        if not args.reason.strip():
            raise MnistflowError("--reason: say why (it is kept with the retracted items)")
        return {"increments": args.retract, "client": args.retract_client, "reason": args.reason,
                "params": load_params(args.params), "params_file": str(args.params), "data_root": args.data_root}

    run_flow_command(retraction, "python -m flows.intake", __doc__,
                     lambda r, link: f"retracted {r['items']} item(s) ({', '.join(r['retracted'])})"
                                     f"\n  run in the UI: {link}", add_arguments, prepare)
