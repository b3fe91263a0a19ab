"""What :func:`resumable_core.reconcile.decide` reads and returns.

Observations (:class:`PodView`: a worker pod or local subprocess as observed) and
the :class:`Decision` with its plans (a pod to create, events to record). Value
objects only: the executors (``resumable_operator.controller``,
``resumable_runner.runner``) build the observations and carry out the plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from resumable.v1alpha1 import ResumableBatchStatus
from resumable_core.times import parse_time

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
EventType = Literal["Normal", "Warning"]

#: A pod still not ended this long after its deletion deadline is on a lost node:
#: it is force-deleted and its attempt ends as a disruption.
LOST_POD_SECONDS = 120.0


@dataclass(frozen=True)
class PodView:
    """What the decision needs to know about one worker pod (or local subprocess)."""

    name: str
    attempt: int
    phase: PodPhase
    exit_code: int | None = None
    reason: str = ""
    disruption: str = ""
    deleting: bool = False
    #: metadata.deletionTimestamp: when the kubelet should have stopped the pod.
    delete_by: str = ""

    @property
    def ended(self) -> bool:
        """True once the worker process has ended (the pod Succeeded or Failed)."""
        return self.phase in ("Succeeded", "Failed")

    def stuck_deleting(self, now: datetime) -> bool:
        """Still not ended well past its deletion deadline: its node is gone or unreachable."""
        deadline = parse_time(self.delete_by) if self.delete_by else None
        return (
            not self.ended
            and deadline is not None
            and now >= deadline + timedelta(seconds=LOST_POD_SECONDS)
        )


@dataclass(frozen=True)
class PodPlan:
    """A worker pod to create."""

    name: str
    attempt: int
    start_index: int
    total_items: int | None
    careful: bool = False


@dataclass(frozen=True)
class EventPlan:
    """A Kubernetes Event to record on the batch."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, for metrics."""

    kind: Literal["succeeded", "failed", "disrupted", "not-finished"]
    reason: str


@dataclass
class Decision:
    """What to do for one batch now. The executor applies status first, then the rest."""

    status: ResumableBatchStatus
    status_changed: bool = False
    bump_attempt: bool = False
    create_pod: PodPlan | None = None
    delete_pods: list[tuple[str, bool]] = field(default_factory=list)  # (name, graceful)
    events: list[EventPlan] = field(default_factory=list)
    delete_batch: bool = False
    requeue_after: float | None = None
    outcome: Outcome | None = None
    resumed_after_seconds: float | None = None

    @property
    def rests_on_checkpoint(self) -> bool:
        """True when judged from the checkpoint as read: it accounts for an attempt's end
        or starts an attempt. A worker write since then must refuse its status write
        (see :mod:`resumable_core.patches`)."""
        return self.outcome is not None or self.bump_attempt
