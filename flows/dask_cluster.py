"""The Dask cluster a sweep's trials run on, when no scheduler address is given."""

from __future__ import annotations

import os
import socket
from typing import Any

# Dask's own INFO lines (every worker's start and stop) would drown the sweep's;
# set before distributed is first imported, and inherited by its worker processes.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


def local_cluster(workers: int, threads: int, gpus: int) -> dict[str, Any]:
    """DaskTaskRunner settings for a cluster on this machine.

    CPU: a LocalCluster of worker processes, processes x torch threads <= cores.
    GPU: one worker per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES) and
    offering the resource GPU=1 that each trial asks for.
    """
    import dask
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    # Dask's defaults are for many small tasks in big worker pools; a trial is one long,
    # allocation-heavy task. Its MALLOC_TRIM_THRESHOLD_ makes glibc hand every freed
    # batch back to the kernel (training 20% slower), and its 100 ms memory monitor
    # takes the GIL from the training loop several times a batch.
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                     "distributed.worker.memory.monitor-interval": "2s"})
    preload = ["flows.dask_preload"]  # torch, matplotlib and Prefect, loaded as each worker starts
    if gpus:
        specs = {i: {"cls": Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}, "preload": preload,
                                                "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
                 for i in range(min(workers, gpus))}
        return {"cluster_class": SpecCluster, "cluster_kwargs": {
            "workers": specs, "scheduler": {"cls": Scheduler, "options": {"dashboard_address": None}}}}
    n = max(1, min(workers, (os.cpu_count() or 1) // threads))
    return {"cluster_class": LocalCluster, "cluster_kwargs": {
        "n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
        "preload": preload}}


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_address() -> str:
    """The Dask worker running this code, or this host and process outside one."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
