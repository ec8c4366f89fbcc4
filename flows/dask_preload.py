"""Imported by each local Dask worker as it starts (distributed's ``preload``).

The libraries a trial needs are loaded once per worker, while the cluster comes
up, rather than inside the worker's first trial.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401
import torch  # noqa: E402, F401

import flows.pipeline  # noqa: E402, F401  (prefect, the tasks, mnistflow)
