from __future__ import annotations

from pathlib import Path

from prefect import task

from lifecycle.intake import IntakeReport, Screening, intake
from lifecycle.intake_sources import Candidate, Limits, read_sources
from mnistflow.dataset_files import locate
from mnistflow.params import DataParams

from . import TASK_DEFAULTS


@task(name="read-sources", **TASK_DEFAULTS)
def read_sources_task(sources: list[Path], classes: list[str], shape: tuple[int, int], limits: Limits,
                      inbox: Path | None) -> list[Candidate]:
    """Every item of every source, prepared as the service prepares its input; unusable ones with their reason."""
    return read_sources(sources, classes, shape, limits, inbox)


@task(name="gate-and-write", **TASK_DEFAULTS)
def gate_and_write_task(data: DataParams, data_root: Path, candidates: list[Candidate], sources: list[str],
                        time: str, screening: Screening | None = None) -> IntakeReport:
    """The gate and the trust rules, then the accepted items as one increment (written whole, or not at all)."""
    return intake(data.dataset, lambda: locate(data, data_root), data_root, candidates, sources, time, screening)
