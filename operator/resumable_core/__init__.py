"""resumable_core: what the operator and the local runner share, with no kopf and no
Kubernetes client.

The pure decision logic (:mod:`resumable_core.reconcile`: given a batch and what is
observed, decide the actions), the conditions it sets, the objects it asks for (pods,
worker RBAC, events) and the fenced status patches that write its decisions. The
operator (:mod:`resumable_operator`) executes decisions against the API server, the
local runner (:mod:`resumable_runner`) against subprocesses and files.
"""
