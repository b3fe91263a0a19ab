"""The reconcile loop: read, decide, act, one batch at a time, level-based.

kopf's watch handlers (:mod:`resumable_operator.handlers`) only add
``(namespace, name)`` keys to the :class:`~resumable_operator.queue.WorkQueue`;
its workers call :meth:`Controller.reconcile`, which

1. reads the batch's pods, then the batch (in that order: see :meth:`_observe`),
   what :class:`~resumable_operator.podcontrol.PodControl` knows of a pod
   create still under way, and the batch's Kueue Workload if it is queued;
2. asks :func:`resumable_core.reconcile.decide` what to do;
3. acts: the status first (:class:`~resumable_operator.statuswriter.StatusWriter`,
   a JSON patch fenced on the attempt), then pod deletions, the Kueue Workload
   change (:class:`~resumable_operator.workloads.WorkloadControl`), the new pod, the
   events (:class:`~resumable_operator.events.EventRecorder`), the metrics;
4. when it tried to create a pod, tells decide() how that went and writes what
   it decides about it (the batch fails for an invalid pod, waits for one
   refused for now, announces one created at last).

Only decide() changes a batch's status; the controller executes. Duplicate keys
collapse in the queue and a missed event is caught by the periodic requeue, so
neither matters. Writes happen only when a decision changed something, and
none once the controller is stopped (leadership lost, shutting down).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from resumable import constants as names
from resumable.kubeapi import KubeApi, NotFoundError, batch_path
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_core import objects
from resumable_core.decision import Decision, PodCreate, PodView, WorkloadView
from resumable_core.policy.pods import ended_pods_to_prune
from resumable_core.reconcile import decide
from resumable_core.times import format_time
from resumable_operator.events import EventRecorder
from resumable_operator.metrics import Metrics
from resumable_operator.podcontrol import PodControl
from resumable_operator.queue import Key, WorkQueue
from resumable_operator.statuswriter import StatusConflictError, StatusWriter
from resumable_operator.workloads import WorkloadControl

log = logging.getLogger("resumable_operator")

#: Look again this soon after a write the batch's change refused.
CONFLICT_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class _Observed:
    """One batch as read for a reconcile."""

    key: Key
    batch: ResumableBatch
    #: The status as read (the JSON the patch is computed against).
    read: dict[str, Any] | None
    pods: list[PodView]
    create: PodCreate | None
    #: The batch's Kueue Workload (None: the batch is not labelled with a queue).
    workload: WorkloadView | None = None


class Controller:
    """Composes the queue, pod control, the status writer, events and metrics."""

    def __init__(
        self,
        api: KubeApi,
        *,
        workers: int = 4,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] | None = None,
        kueue: bool = False,
    ) -> None:
        self.api = api
        #: ``now`` for the decisions and event stamps (a test may set the time of day).
        self.clock = clock or (lambda: datetime.now(UTC))
        self.metrics = metrics if metrics is not None else Metrics()
        self.queue = WorkQueue(self.reconcile, workers=workers)
        self.metrics.watch_queue(self.queue.depth, self.queue.in_flight)
        self.pods = PodControl(api)
        self.status = StatusWriter(api)
        self.events = EventRecorder(api)
        #: Kueue Workloads, for batches labelled with a queue (``kueue``: the integration is on).
        self.workloads = WorkloadControl(api, enabled=kueue)
        #: True once the workers run: a standby replica (leader.py) only queues keys,
        #: and counts nothing in the metrics, which the leader does.
        self.acting = False
        self._stopped = False  # set by stop(): a reconcile still running writes nothing more

    @property
    def workers(self) -> int:
        """How many batches are reconciled at once."""
        return self.queue.workers

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        """Start the workers on the running event loop.

        Keys queued before (a standby's, one per batch it has seen) are worked
        off first: a new leader looks at every batch once.
        """
        self.acting = True
        self.metrics.set_leader(True)
        self.queue.start()

    async def stop(self, *, wait: float = 10.0) -> None:
        """Stop the workers and pending timers, then wait up to ``wait`` seconds for
        reconciles already running in threads (which make no write once they see
        the controller stopped) to end: a Lease released after this is not held by
        a replica still writing.
        """
        self.acting = False
        self._stopped = True
        self.metrics.set_leader(False)
        await self.queue.stop(wait=wait)

    def in_flight(self) -> int:
        """Reconciles running now."""
        return self.queue.in_flight()

    def enqueue(
        self, namespace: str, name: str, *, delay: float = 0.0, urgent: bool = False
    ) -> None:
        """Ask for a reconcile of the batch, now or after a delay. Duplicates collapse;
        ``urgent`` ones go first. Safe from any thread."""
        self.queue.add((namespace, name), delay=delay, urgent=urgent)

    def forget(self, namespace: str, name: str) -> None:
        """The batch is gone: drop its timer, its create in progress and its metrics
        state. Safe from any thread."""
        key = (namespace, name)
        self.queue.forget(key)
        self.pods.forget(key)
        self.metrics.forget(key)

    def observe_batch(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Called for every watch event of a batch: metrics, and a reconcile when needed.

        A worker's checkpoint writes only feed the metrics: reconciling for each
        would cost API calls and change nothing.
        """
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.forget(*key)
            return
        status = body.get("status") or {}
        self.metrics.observe_checkpoint(key, meta.get("uid", ""), status, count=self.acting)
        cp = status.get("checkpoint") or {}
        if (
            event_type in (None, "ADDED")
            or not status.get("conditions")
            or status.get("observedGeneration") != meta.get("generation")
            or (cp.get("finished") and status.get("phase") == names.PHASE_RUNNING)
        ):
            self.enqueue(*key)

    def observe_pod(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Called for every watch event of a worker pod: a reconcile of its batch when
        the change can matter, before the others when the pod ended or is going.

        A pod still Pending (just created: the reconcile that created it wrote the
        status) changes no decision, nor does the deletion of a pod that had ended
        (its end was acted on). Each of 1,000 batches saves two reconciles per
        attempt so; a periodic requeue still looks at every running batch.
        """
        meta = body.get("metadata") or {}
        batch = (meta.get("labels") or {}).get(names.LABEL_BATCH)
        if not batch:
            return
        phase = (body.get("status") or {}).get("phase") or "Pending"
        ended = phase in ("Succeeded", "Failed", "Unknown")
        going = event_type == "DELETED" or bool(meta.get("deletionTimestamp"))
        if (ended and event_type == "DELETED") or (phase == "Pending" and not going):
            return
        self.enqueue(meta.get("namespace", ""), batch, urgent=ended or going)

    def observe_workload(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Called for every watch event of a batch's Workload (admitted, evicted,
        finished): a reconcile of its batch, before the others."""
        meta = body.get("metadata") or {}
        batch = (meta.get("labels") or {}).get(names.LABEL_BATCH)
        if batch and event_type != "DELETED":
            self.enqueue(meta.get("namespace", ""), batch, urgent=True)

    # -------------------------------------------------------------- reconcile

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Read, decide, act for one batch. Returns seconds until it should be looked at again."""
        seen = self._observe(namespace, name)
        if seen is None:
            return None
        now = self.clock()
        decision = decide(seen.batch, seen.pods, now, create=seen.create, workload=seen.workload)
        if self._stopped:
            return None  # stopped meanwhile (leadership lost, shutting down): write nothing
        return self._act(seen, decision, now)

    def _observe(self, namespace: str, name: str) -> _Observed | None:
        """The batch's pods, then the batch; None when it is gone or not valid.

        Pods first: a worker makes all its writes before its container ends, so a
        pod listed as ended has its last checkpoint in the batch read after it;
        read the other way round, a worker finishing in between looks like "exit 0
        with items left" and the batch runs again.
        """
        key = (namespace, name)
        listed = self.pods.list(namespace, name)
        try:
            raw = self.api.request("GET", batch_path(namespace, name))
        except NotFoundError:
            self.forget(namespace, name)
            return None
        try:
            batch = ResumableBatch.model_validate(raw)
        except ValidationError as exc:
            log.error("%s/%s is not a valid ResumableBatch: %s", namespace, name, exc)
            return None
        # A worker Role an older operator made wider is narrowed at first sight.
        self.pods.narrow_worker_role_once(batch)
        uid = batch.metadata.uid or ""
        views = [objects.pod_view(p) for p in listed if objects.owned_by(p, uid)]
        others = {p["metadata"]["name"] for p in listed if not objects.owned_by(p, uid)}
        create = self.pods.report(key, batch, {v.name for v in views}, others)
        workload = self.workloads.observe(batch)
        return _Observed(key, batch, raw.get("status"), views, create, workload)

    def _act(self, seen: _Observed, decision: Decision, now: datetime) -> float | None:
        """Carry out a decision: status, deletions, the new pod, events, metrics."""
        (ns, name), batch = seen.key, seen.batch
        try:
            stored = self.status.write(ns, name, seen.read, decision)
        except StatusConflictError as exc:
            log.info("%s/%s changed while reconciling (%s); again", ns, name, exc)
            return CONFLICT_RETRY_SECONDS
        if self._stopped:
            return None  # stopped after the status write: no pods from a stopped replica
        for pod, graceful in decision.delete_pods:
            self.pods.delete(ns, pod, graceful=graceful)
        if decision.workload is not None:
            self.workloads.apply(batch, decision.workload, stamp=format_time(self.clock()))
        created = self._create(seen, decision)
        stamp = format_time(self.clock())
        self.events.record(
            batch,
            [e for e in decision.events if not e.once_pod_exists or _exists(created)],
            stamp=stamp,
        )
        requeue, final = decision.requeue_after, decision.status
        if decision.create_pod is not None and created is None:  # a retry not due yet
            requeue = _sooner(requeue, self.pods.due_in(seen.key))
        if created is not None:
            requeue, final = self._follow_create(seen, stored, decision, created, now)
        if decision.outcome is not None and decision.outcome.kind != "succeeded":
            self.metrics.attempt_ended(decision.outcome.reason)
        for pod in ended_pods_to_prune(seen.pods, decision.status.active_pod):
            self.pods.delete(ns, pod, graceful=False)
        if decision.delete_batch:
            self._delete_batch(ns, name)
            return None
        self.metrics.record_conditions(seen.key, final)
        return requeue

    def _create(self, seen: _Observed, decision: Decision) -> PodCreate | None:
        """Create the decided pod; None when there is none or its retry is not due."""
        if decision.create_pod is None:
            return None
        return self.pods.create(
            seen.key, seen.batch, decision.create_pod, placement=decision.placement
        )

    def _follow_create(
        self,
        seen: _Observed,
        stored: dict[str, Any] | None,
        first: Decision,
        created: PodCreate,
        decided_at: datetime,
    ) -> tuple[float | None, ResumableBatchStatus]:
        """Tell decide() how the create went, and write what it decides of it.

        Returns when to look again and the status as it now stands.
        """
        (ns, name), batch = seen.key, seen.batch
        if created.result == "taken":
            log.info("%s/%s: %s; moving to the next attempt", ns, name, created.message)
            return CONFLICT_RETRY_SECONDS, first.status
        if created.result == "refused":
            log.error("%s/%s: cannot create pod %s: %s", ns, name, created.pod, created.message)
        now = self.clock()
        status = (
            ResumableBatchStatus.model_validate(stored)
            if stored is not None
            else first.status.model_copy(deep=True)
        )
        as_written = batch.model_copy(update={"status": status})
        follow = decide(as_written, seen.pods, now, create=created, workload=seen.workload)
        if created.result == "created":
            self._count_resume(first, follow, (now - decided_at).total_seconds())
        if self._stopped:
            return None, first.status
        try:
            self.status.write(ns, name, stored, follow)
        except StatusConflictError:
            return _sooner(first.requeue_after, CONFLICT_RETRY_SECONDS), first.status
        self.events.record(batch, follow.events, stamp=format_time(now))
        return _sooner(follow.requeue_after, self.pods.due_in(seen.key)), follow.status

    def _count_resume(self, first: Decision, follow: Decision, since_first: float) -> None:
        """The new attempt's pod exists: how long after the failure (a metric)."""
        if follow.resumed_after_seconds is not None:  # announced only now, after refusals
            self.metrics.resumed(follow.resumed_after_seconds)
        elif first.resumed_after_seconds is not None:
            self.metrics.resumed(first.resumed_after_seconds + since_first)

    def _delete_batch(self, ns: str, name: str) -> None:
        """Its TTL passed: delete the batch (the garbage collector takes its pods)."""
        with contextlib.suppress(NotFoundError):  # gone already
            self.api.request("DELETE", batch_path(ns, name))
        self.forget(ns, name)


def _exists(created: PodCreate | None) -> bool:
    return created is not None and created.result == "created"


def _sooner(a: float | None, b: float | None) -> float | None:
    """The earlier of two requeue delays (None: no need to look again)."""
    if a is None:
        return b
    return a if b is None else min(a, b)
