from __future__ import annotations

from prefect import get_run_logger, task

from mnistflow.device import DeviceChoice, select_device

from . import TASK_DEFAULTS


@task(name="select-device", **TASK_DEFAULTS)
def device_task(request: str, chosen: DeviceChoice | None = None) -> DeviceChoice:
    """The run's one device choice: the memory check, tensors, training and evaluation all get it.
    ``chosen``: the choice the command line made (and checked) before Prefect started, kept."""
    choice = chosen or select_device(request)
    get_run_logger().info("device %s (%s)%s", choice.name, choice.reason,
                          "; chosen by the command line" if chosen else "")
    return choice
