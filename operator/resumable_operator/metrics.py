"""Prometheus metrics of the operator, served on ``/metrics``.

Fed by the controller after each decision it applies and by the batch watch;
all names start with ``resumable_``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

BATCHES = Gauge(
    "resumable_batches",
    "Batches whose condition of this type is True.",
    ["condition"],
    registry=REGISTRY,
)
ITEMS_COMPLETED = Counter(
    "resumable_items_completed_total", "Items completed, as seen in checkpoints.", registry=REGISTRY
)
ITEMS_REDONE = Counter(
    "resumable_items_redone_total",
    "Items worked on again after a restart because their checkpoint was not written (wasted work).",
    registry=REGISTRY,
)
RESTARTS = Counter(
    "resumable_restarts_total",
    "Attempts that ended and were restarted, by reason.",
    ["reason"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "resumable_operator_leader",
    "1 on the replica that reconciles (the Lease holder, or a single operator), 0 on a standby.",
    registry=REGISTRY,
)
CHECKPOINT_WRITES = Counter(
    "resumable_checkpoint_writes_total", "Checkpoint writes seen on batches.", registry=REGISTRY
)
RESUME_SECONDS = Histogram(
    "resumable_resume_seconds",
    "Seconds from an attempt's failure to the next attempt's pod being created.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
    registry=REGISTRY,
)


def serve(port: int) -> None:
    """Serve /metrics on the port (0 disables it)."""
    if port:
        start_http_server(port, registry=REGISTRY)
