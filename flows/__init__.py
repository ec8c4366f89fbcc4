"""Prefect flows: training, retraining, sweeps."""

import logging
import os

# mnistflow's own log lines (a stage resumed, a mirror retried, a wait for DVC)
# belong in the run's logs in the Prefect UI too. Set before Prefect configures
# its logging; prefect.toml does the same for runs a worker starts.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mnistflow")
logging.getLogger("mnistflow").setLevel(logging.INFO)
