"""Prometheus metrics of the operator, served on ``/metrics``: one :class:`Metrics` object.

The controller is given one (``Controller(api, metrics=...)``) and feeds it after
each decision it applies and from the batch watch; ``handlers.startup`` serves
its registry. All names start with ``resumable_``. A test makes its own, with a
registry of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from resumable.v1alpha1 import ResumableBatchStatus
from resumable_core import conditions as cond

Key = tuple[str, str]


@dataclass(frozen=True)
class _Seen:
    """What the last watch event of a batch showed, to count what changed since."""

    uid: str
    items_done: int
    checkpoint: dict[str, Any]
    redone: int


class Metrics:
    """The operator's metrics, and the per-batch state their changes are counted from."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.batches = Gauge(
            "resumable_batches",
            "Batches whose condition of this type is True.",
            ["condition"],
            registry=r,
        )
        self.items_completed = Counter(
            "resumable_items_completed_total",
            "Items completed, as seen in checkpoints.",
            registry=r,
        )
        self.items_redone = Counter(
            "resumable_items_redone_total",
            "Items worked on again after a restart because their checkpoint was not "
            "written (wasted work).",
            registry=r,
        )
        self.restarts = Counter(
            "resumable_restarts_total",
            "Attempts that ended without finishing the batch (failed, disrupted, or stopped "
            "before the end), by reason, whether or not another attempt followed.",
            ["reason"],
            registry=r,
        )
        self.leader = Gauge(
            "resumable_operator_leader",
            "1 on the replica that reconciles (the Lease holder, or a single operator), "
            "0 on a standby.",
            registry=r,
        )
        self.checkpoint_writes = Counter(
            "resumable_checkpoint_writes_total", "Checkpoint writes seen on batches.", registry=r
        )
        self.resume_seconds = Histogram(
            "resumable_resume_seconds",
            "Seconds from an attempt's failure to the next attempt's pod being created.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
            registry=r,
        )
        self.queue_depth = Gauge(
            "resumable_reconcile_queue_depth",
            "Batches waiting for a reconcile worker (not counting those on a timer).",
            registry=r,
        )
        self.reconciling = Gauge(
            "resumable_reconciles_in_flight", "Reconciles running now.", registry=r
        )
        self._lock = threading.Lock()  # reconcile threads and the event loop share these
        self._true_conditions: dict[Key, frozenset[str]] = {}
        self._seen: dict[Key, _Seen] = {}

    def serve(self, port: int) -> None:
        """Serve /metrics on the port (0 disables it)."""
        if port:
            start_http_server(port, registry=self.registry)

    def watch_queue(self, depth: Callable[[], int], in_flight: Callable[[], int]) -> None:
        """Read the reconcile queue's depth and the reconciles under way at each scrape."""
        self.queue_depth.set_function(depth)
        self.reconciling.set_function(in_flight)

    def set_leader(self, leading: bool) -> None:
        """This replica reconciles (or stopped doing so)."""
        self.leader.set(1 if leading else 0)

    def observe_checkpoint(
        self, key: Key, uid: str, status: dict[str, Any], *, count: bool
    ) -> None:
        """A batch's status as a watch event showed it: count the items completed and
        redone and the checkpoint writes since the last event of the same batch.

        ``count`` is False on a standby, which only keeps track: the leader counts.
        """
        cp = status.get("checkpoint") or {}
        context = cp.get("context") or {}
        seen = _Seen(
            uid=uid,
            items_done=int(cp.get("itemsDone", 0) or 0),
            checkpoint=cp,
            redone=int(context.get("redone", 0) or 0) if isinstance(context, dict) else 0,
        )
        with self._lock:
            last = self._seen.get(key)
            self._seen[key] = seen
        if last is None or last.uid != uid or not count:
            return
        if seen.items_done > last.items_done:
            self.items_completed.inc(seen.items_done - last.items_done)
        if cp and cp != last.checkpoint:
            self.checkpoint_writes.inc()
        if seen.redone > last.redone:
            self.items_redone.inc(seen.redone - last.redone)

    def attempt_ended(self, reason: str) -> None:
        """An attempt ended without finishing the batch, for ``reason``."""
        self.restarts.labels(reason=reason).inc()

    def resumed(self, seconds: float) -> None:
        """A new attempt's pod was created ``seconds`` after the last one failed."""
        self.resume_seconds.observe(seconds)

    def record_conditions(self, key: Key, status: ResumableBatchStatus) -> None:
        """The batch's conditions as just decided: the per-condition gauge follows."""
        with self._lock:
            self._true_conditions[key] = frozenset(
                c.type for c in status.conditions if c.status == "True"
            )
            self._update_batches()

    def forget(self, key: Key) -> None:
        """The batch is gone: it no longer counts."""
        with self._lock:
            self._true_conditions.pop(key, None)
            self._seen.pop(key, None)
            self._update_batches()

    def _update_batches(self) -> None:
        """Set the per-condition gauge (called with the lock held)."""
        for type_ in cond.ALL_TYPES:
            count = sum(1 for true in self._true_conditions.values() if type_ in true)
            self.batches.labels(condition=type_).set(count)
