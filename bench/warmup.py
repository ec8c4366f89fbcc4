"""What both sides of a timing pay before their timers start."""

import torch


def warm_up_torch_optim() -> None:
    """The first optimizer a process builds imports torch._dynamo (~1.5 s here).
    That is a one-time library import, not training, so the baseline and ours
    both pay it before timing."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
