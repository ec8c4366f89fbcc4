"""Imported by each local Dask worker as it starts (distributed's ``preload``).

What every trial would otherwise pay in its worker's first trial is paid once,
while the cluster comes up: the imports (torch, matplotlib, Prefect and the
pipeline), and torch.optim's one-time import of torch._dynamo (about 1.5 s
here), which the first optimizer built in a process triggers.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401
import torch  # noqa: E402

import flows.pipeline  # noqa: E402, F401  (prefect, the tasks, mnistflow)

torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
