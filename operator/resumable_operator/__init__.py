"""resumable_operator: the kopf operator that runs ResumableBatch objects to completion.

The decision logic (:mod:`resumable_operator.reconcile`) is pure and imports
neither kopf nor the Kubernetes client, so the local runner reuses it; the kopf
registration lives in :mod:`resumable_operator.handlers`.
"""
