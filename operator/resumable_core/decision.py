"""What :func:`resumable_core.reconcile.decide` reads and returns.

Observations (:class:`PodView`: a worker pod or local subprocess as observed;
:class:`PodCreate`: what became of creating the active attempt's pod, which no
pod view shows yet; :class:`WorkloadView`: the batch's Kueue Workload) and the
:class:`Decision` with its plans (a pod to create, events to record, what to do
with the Workload). Value objects only: the executors
(``resumable_operator.controller``, ``resumable_runner.runner``) build the
observations and carry out the plans; only decide() changes a batch's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from resumable.constants import DISRUPTION_NODE_LOST
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
    #: The worker container's termination message (a start error's cause).
    message: str = ""
    disruption: str = ""
    deleting: bool = False
    #: metadata.deletionTimestamp: when the kubelet should have stopped the pod.
    delete_by: str = ""
    #: A parallel worker's slot (spec.parallelism > 1); None for the one worker.
    slot: int | None = None

    @property
    def ended(self) -> bool:
        """True once the worker process has ended (the pod Succeeded or Failed)."""
        return self.phase in ("Succeeded", "Failed")

    def lost(self) -> PodView:
        """This pod as ended on a lost node: force-deleted, its attempt a disruption."""
        return replace(
            self,
            phase="Failed",
            exit_code=None,
            reason="",
            disruption=self.disruption or DISRUPTION_NODE_LOST,
            deleting=True,
            delete_by="",
        )

    def stuck_deleting(self, now: datetime) -> bool:
        """Still not ended well past its deletion deadline: its node is gone or unreachable."""
        deadline = parse_time(self.delete_by) if self.delete_by else None
        return (
            not self.ended
            and deadline is not None
            and now >= deadline + timedelta(seconds=LOST_POD_SECONDS)
        )


#: What became of a pod create the executor tried: ``created``; ``retrying`` (refused
#: for now: 403 quota or a missing service account, 429, 5xx; tried again later);
#: ``refused`` (invalid, 400/422: no retry can help); ``taken`` (the name is held by
#: another object's pod, e.g. an earlier batch of the same name).
CreateResult = Literal["created", "retrying", "refused", "taken"]


@dataclass(frozen=True)
class PodCreate:
    """The executor's report on creating the active attempt's pod.

    Passed to decide() (``create=``) while the pod is not among the pods observed:
    right after a try, and on later passes while the executor retries or after
    it found the name taken.
    """

    pod: str
    attempt: int
    result: CreateResult
    #: The API server's reason, for ``retrying``, ``refused`` and ``taken``.
    message: str = ""
    #: ``retrying`` just now: seconds until the next try. None while waiting for it.
    retry_in: float | None = None


@dataclass(frozen=True)
class Placement:
    """Where the admitted flavour puts the workers: its node labels and tolerations."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class WorkloadView:
    """The batch's Kueue Workload as observed (a batch labelled with a queue only).

    ``exists`` False: there is none (yet). ``unavailable``: the executor cannot
    manage Workloads (the operator runs without its Kueue integration), and says why.
    """

    name: str
    exists: bool = True
    unavailable: str = ""
    #: spec.active (False: deactivated, by an administrator or by Kueue).
    active: bool = True
    #: Conditions QuotaReserved, Admitted, Finished, Evicted (status True).
    quota_reserved: bool = False
    admitted: bool = False
    finished: bool = False
    evicted: bool = False
    #: The Evicted condition's reason (Preempted, Deactivated, ClusterQueueStopped, ...)
    #: and message; the Preempted condition's message names the preemptor.
    evicted_reason: str = ""
    evicted_message: str = ""
    preempted_message: str = ""
    #: Why it waits: the QuotaReserved condition's message while not reserved.
    pending_message: str = ""
    #: status.requeueState.requeueAt: Kueue queues it again no sooner.
    requeue_at: str = ""
    #: The ClusterQueue that admitted it.
    cluster_queue: str = ""
    deleting: bool = False
    #: The admitted flavours' node labels and tolerations (and admission checks' updates).
    placement: Placement = field(default_factory=Placement)


#: What to do with the Workload: ``create`` it; ``requeue`` (an evicted Workload whose
#: workers all stopped: its quota reservation is cleared, so Kueue queues it again,
#: as Kueue's job framework does); ``finish`` (the batch ended: quota released);
#: ``delete`` (suspended, outside its window, or an old run's finished Workload).
WorkloadOp = Literal["create", "requeue", "finish", "delete"]


@dataclass(frozen=True)
class WorkloadPlan:
    """One change to the batch's Workload."""

    op: WorkloadOp
    name: str
    #: For ``requeue`` and ``finish``: the condition's reason and message.
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class PodPlan:
    """A worker pod to create."""

    name: str
    attempt: int
    start_index: int
    total_items: int | None
    careful: bool = False
    #: A parallel worker's slot, and what it needs to claim chunks.
    slot: int | None = None
    parallelism: int = 1
    chunk_size: int | None = None
    #: The run it works for (status.runId: a recurring batch's runs are not spec.runId).
    run_id: str = ""


@dataclass(frozen=True)
class EventPlan:
    """A Kubernetes Event to record on the batch."""

    type: EventType
    reason: str
    message: str
    #: Only true once the attempt's pod exists (Started, Resumed): an executor whose
    #: create did not go through drops it; decide() announces the start again when
    #: told the pod was created after all.
    once_pod_exists: bool = False


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
    #: A change to the batch's Kueue Workload, made after the status write.
    workload: WorkloadPlan | None = None
    #: Where the admitted flavour puts a pod created now (a batch admitted by Kueue).
    placement: Placement | None = None

    @property
    def rests_on_checkpoint(self) -> bool:
        """True when judged from the checkpoint as read: it accounts for an attempt's end
        or starts an attempt. A worker write since then must refuse its status write
        (see :mod:`resumable_core.patches`)."""
        return self.outcome is not None or self.bump_attempt
