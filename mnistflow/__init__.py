"""mnistflow: the plain, Prefect-free logic of each pipeline step.

Prefect tasks (``tasks/``), the flows (``flows/``) and the DVC stages
(``python -m mnistflow.stages``) all call these functions, so the entry points
cannot drift apart. Every function is handed the paths it reads and writes.
Nothing here imports Prefect: a DVC stage or the GPU check must not pay for it.
"""

__version__ = "0.1.0"
