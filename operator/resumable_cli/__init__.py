"""resumable_cli: the ``resumable`` (and ``kubectl resumable``) command line.

Local commands drive :mod:`resumable_runner`; cluster commands talk to the API
server through the SDK's client. Neither needs kopf.
"""

from resumable_cli.cli import main

__all__ = ["main"]
