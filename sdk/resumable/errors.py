"""The errors the SDK raises. Each names what went wrong and where, in one line."""

from __future__ import annotations


class ResumableError(Exception):
    """Base class for every error raised by resumable."""


class UsageError(ResumableError):
    """Deterministic misuse: every retry would fail the same way.

    Not caught, it ends the worker with exit code
    :data:`resumable.constants.EXIT_USAGE` after saving its message in the
    checkpoint; the operator and `resumable run` then fail the batch without
    retrying, the message in its Failed condition.
    """


class ConfigError(UsageError):
    """A setting (environment variable or argument) is invalid; the message names it."""


class FencedError(ResumableError):
    """A newer attempt owns the checkpoint; this worker must stop without writing."""


class FingerprintMismatchError(UsageError):
    """The item list differs from the one the checkpoint was made for."""


class CorruptCheckpointError(ResumableError):
    """A stored checkpoint cannot be read; the message names the file or object."""


class StoreUnavailableError(ResumableError):
    """The store could not be reached after retries; pending progress is kept in memory."""


class StoreRefusedError(ResumableError):
    """The API server refused a checkpoint read or write, not for fencing.

    RBAC (403), an expired token (401), a value the CRD's schema rejects (422),
    a malformed request (400): retrying would not help. ``status`` and
    ``message`` are the server's.
    """

    def __init__(self, text: str, *, status: int, message: str) -> None:
        super().__init__(text)
        self.status = status
        self.message = message
