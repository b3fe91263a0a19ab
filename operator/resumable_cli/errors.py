"""The error a command raises to end with a one-line message instead of a traceback.

Raised anywhere under a command; :func:`resumable_cli.app.main` prints it as
``error: ...`` on stderr and exits 1. Kept apart so that ``app`` needs nothing
else of the commands to catch it.
"""

from __future__ import annotations


class CliError(Exception):
    """A one-line error for the user (no traceback)."""
