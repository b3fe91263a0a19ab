"""The state of one :func:`resumable_core.reconcile.decide` call, shared by its policies.

Like the Kubernetes job controller's ``syncJobCtx``: the batch and the pods as
observed, the status as read (``old``) and as being decided (``status``, a copy),
the :class:`Decision` being built, ``now`` and its stamp. The policies in
:mod:`resumable_core.policy` take it instead of long argument lists and record
what they decide through its methods.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from resumable.v1alpha1 import ResumableBatch, ResumableBatchSpec, ResumableBatchStatus
from resumable_core import conditions as cond
from resumable_core.decision import (
    Decision,
    EventPlan,
    EventType,
    PodCreate,
    PodView,
    WorkloadView,
)
from resumable_core.progress import derive_phase, total_items
from resumable_core.times import format_time


@dataclass
class SyncContext:
    """One decision in the making."""

    batch: ResumableBatch
    pods: list[PodView]
    now: datetime
    #: The status as read; never changed.
    old: ResumableBatchStatus
    #: The status being decided: ``decision.status``.
    status: ResumableBatchStatus
    decision: Decision
    #: ``now`` as status times are written.
    stamp: str
    #: The executor's report on creating the active attempt's pod, if any.
    create: PodCreate | None = None
    #: The batch's Kueue Workload, for a batch labelled with a queue (None: not observed,
    #: as under the local runner, which ignores queues).
    workload: WorkloadView | None = None

    @classmethod
    def begin(
        cls,
        batch: ResumableBatch,
        pods: list[PodView],
        now: datetime,
        *,
        create: PodCreate | None = None,
        workload: WorkloadView | None = None,
    ) -> SyncContext:
        """A context whose status starts as a copy of the batch's, at this generation."""
        status = batch.status.model_copy(deep=True)
        status.observed_generation = batch.metadata.generation
        decision = Decision(status)
        return cls(
            batch, pods, now, batch.status, status, decision, format_time(now), create, workload
        )

    @property
    def spec(self) -> ResumableBatchSpec:
        """The batch's spec."""
        return self.batch.spec

    @property
    def generation(self) -> int | None:
        """The spec's generation: what every condition set now was judged against."""
        return self.batch.metadata.generation

    @property
    def total(self) -> int | None:
        """The item count as the status being decided knows it (see ``total_items``)."""
        return total_items(self.batch, self.status)

    @property
    def live_pods(self) -> list[PodView]:
        """The observed pods whose worker has not ended."""
        return [p for p in self.pods if not p.ended]

    def pod(self, name: str) -> PodView | None:
        """The observed pod of that name (None for "" or a pod not seen)."""
        return next((p for p in self.pods if p.name == name), None) if name else None

    def set_condition(self, type_: str, value: cond.Status, reason: str, message: str) -> None:
        """Set one condition of the status being decided (idempotent)."""
        cond.set_condition(
            self.status.conditions,
            type_,
            value,
            reason,
            message,
            generation=self.generation,
            now=self.stamp,
        )

    def event(
        self, type_: EventType, reason: str, message: str, *, once_pod_exists: bool = False
    ) -> int:
        """Record an Event on the batch; returns its index, for :meth:`amend_event`."""
        self.decision.events.append(EventPlan(type_, reason, message, once_pod_exists))
        return len(self.decision.events) - 1

    def amend_event(self, index: int, suffix: str) -> None:
        """Add to the message of an event recorded earlier in this decision."""
        told = self.decision.events[index]
        self.decision.events[index] = replace(told, message=told.message + suffix)

    def delete_pod(self, name: str, *, graceful: bool) -> None:
        """Ask for a pod's deletion (once per name and manner)."""
        if (name, graceful) not in self.decision.delete_pods:
            self.decision.delete_pods.append((name, graceful))

    def conclude(self) -> Decision:
        """The decision: the phase derived, and whether the status changed at all."""
        status = self.status
        status.phase = derive_phase(status)
        # Every condition was judged against this generation of the spec, so each says
        # so (a lower observedGeneration would read as out of date).
        for c in status.conditions:
            c.observed_generation = status.observed_generation
        self.decision.status_changed = _dump(self.old) != _dump(status)
        return self.decision


def _dump(status: ResumableBatchStatus) -> dict[str, object]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")
