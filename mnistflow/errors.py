"""The one exception type for a user's mistake or a broken input.

Entry points print it as a single line and exit non-zero; anything else is a
bug and keeps its traceback.
"""


class MnistflowError(Exception):
    """A clear, one-line problem with params, files, mirrors or checkpoints."""

    exit_code = 2
    # Whether trying again later can succeed (a network fault) or not (a mistake).
    retryable = False


class MirrorsFailedError(MnistflowError):
    """No mirror served a verified file. Retryable when a mirror failed in a way
    that may pass (refused, reset, HTTP 5xx); not when they served wrong bytes."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class NonFiniteLossError(MnistflowError):
    """Training diverged; previous good outputs are left as they were."""
