"""The training flow: download -> split -> device -> loaders -> stages -> evaluate -> plot.

Run it directly from the repository root::

    python -m flows.training                 # on params.yaml
    python -m flows.training --params presets/fast.yaml

or through the `train` deployment (prefect.yaml; entrypoint
``flows/training.py:training``). Its typed ``params`` argument is the
params.yaml schema, shown as a form in the Prefect UI; left empty, params.yaml
is used.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.pipeline import output_paths, outputs_slot, resolve_params, run_from_command_line, run_pipeline
from mnistflow.params import Params
from mnistflow.paths import Outputs
from tasks.report import report_task


@flow(name="mnist-training", log_prints=True)
def training(params: Params | None = None, params_file: str = "params.yaml") -> dict[str, Any]:
    """Train and evaluate a feed-forward network on MNIST-family data.

    Args:
        params: the whole pipeline configuration (params.yaml's schema); overrides params_file.
        params_file: read when params is not given.
    """
    params = resolve_params(params, params_file)
    with outputs_slot():
        result = run_pipeline(params)
        report_task(result.metrics, Outputs().history, result.plots)
    return {
        "val_accuracy": result.metrics["val"]["accuracy"],
        "test_accuracy": result.metrics["test"]["accuracy"],
        "device": result.device.name,
        "plots": [str(p) for p in result.plots],
        **output_paths(),
    }


def main() -> None:
    run_from_command_line(
        training, "python -m flows.training", __doc__,
        lambda r: f"validation accuracy {100 * r['val_accuracy']:.2f}%, "
                  f"test accuracy {100 * r['test_accuracy']:.2f}%; outputs in outputs/")


if __name__ == "__main__":
    main()
