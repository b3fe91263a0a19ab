"""resumable_operator: the kopf operator that runs ResumableBatch objects to completion.

Thin: kopf's watch handlers (:mod:`resumable_operator.handlers`) enqueue keys; the
controller reads, asks :mod:`resumable_core` what to do and executes it against the
API server; leader election and metrics beside it.
"""
