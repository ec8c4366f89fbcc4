"""The one exception type for a user's mistake or a broken input.

Entry points print it as a single line and exit non-zero; anything else is a
bug and keeps its traceback.
"""


class MnistflowError(Exception):
    """A clear, one-line problem with params, files, mirrors or checkpoints."""

    exit_code = 2


class NonFiniteLossError(MnistflowError):
    """Training diverged; previous good outputs are left as they were."""
