"""resumable_runner: ``resumable run``, the same batch on a laptop, no cluster needed.

Workers are subprocesses, the checkpoint a local file; every decision (restarts,
backoff, poison items, suspend) comes from :mod:`resumable_core`, as in the operator.
"""
