"""Prefect flows: training, retraining, sweeps."""

import logging
import os

# mnistflow's own log lines (a stage resumed, a mirror retried, a wait for DVC)
# belong in the run's logs in the Prefect UI too. Set before Prefect configures
# its logging; prefect.toml does the same for runs a worker starts.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mnistflow")
# Outside a run (a DVC stage, a benchmark) those lines have no run to go to; that is no warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
logging.getLogger("mnistflow").setLevel(logging.INFO)
