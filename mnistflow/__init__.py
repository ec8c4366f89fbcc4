"""mnistflow: the pipeline steps, the code the model depends on.

download -> split -> device and runtime -> tensors -> staged training ->
export, evaluate, model card -> plots. Prefect tasks (``tasks/``), the flows
(``flows/``) and the DVC stages (``python -m mnistflow.dvc_stages.<name>``) all call these
functions, so the entry points cannot drift apart. Every function is handed the
paths it reads and writes. Nothing here imports Prefect or DVC: a DVC stage or
the GPU check must not pay for it, and each DVC stage's code is exactly what
it imports from here and from ``models/`` (``mnistflow.code``). Serving, the
model's lifecycle and the test harness live in ``serving/``, ``lifecycle/``
and ``harness/``.
"""

__version__ = "0.1.0"
