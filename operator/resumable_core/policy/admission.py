"""Kueue admission: a batch labelled ``kueue.x-k8s.io/queue-name`` runs only while admitted.

Called by :func:`resumable_core.reconcile.decide` right after the spec.suspend and
window rules, before any worker starts. The batch's Workload (one podSet: the pod
template, ``spec.parallelism`` pods) is created and owned by the operator, the
way Kueue documents for a framework of its own; this module decides from the
:class:`~resumable_core.decision.WorkloadView` the executor observed:

* not admitted yet: no worker starts; Suspended True with reason Queued (phase
  Queued), the message Kueue's (why it waits, when it requeues);
* evicted (preempted by a higher priority, ``spec.active=false``, a stopped
  ClusterQueue): the workers are told to stop, as for a suspend (SIGTERM, and
  their grace period to save); neither a restart nor a failure. Once none runs,
  the Workload's quota reservation is cleared (``requeue``), as Kueue's job
  framework does for its jobs, and Kueue queues it again (after
  ``status.requeueState.requeueAt``, which only Kueue sets and honours: the
  Workload is kept, never replaced, so its requeue count and backoff stand);
  an Evicted event carries Kueue's message, which names the preemptor;
* admitted: workers run with the admitted flavours' node labels and tolerations
  (:attr:`~resumable_core.decision.Decision.placement`);
* the batch ended: the Workload is marked Finished (its quota released);
  suspended or outside its window: it is deleted once no worker runs, and a new
  one is queued when the batch may run again (``spec.active`` is left to the
  administrator: an operator that flipped it back would undo their deactivation).

A batch without the label, or under the local runner (which passes no view),
is never held here.
"""

from __future__ import annotations

from resumable import constants as names
from resumable.v1alpha1 import Condition, ResumableBatch
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import WorkloadPlan, WorkloadView
from resumable_core.policy import pods
from resumable_core.progress import resume_index

#: While queued, look again this often even without a Workload event.
QUEUED_RESYNC_SECONDS = 30.0
#: While workers stop after an eviction (or before a release), look again this soon.
STOPPING_SECONDS = 1.0
#: The reason Kueue's job framework gives QuotaReserved=False when it requeues.
REASON_PENDING = "Pending"
#: What status.lastFailure says after an eviction, for the next Resumed event.
EVICTED_BY_KUEUE = "eviction by Kueue"


def queue_name_of(batch: ResumableBatch) -> str:
    """The LocalQueue a batch is labelled with ("" for none)."""
    labels = (batch.metadata.model_extra or {}).get("labels") or {}
    value = labels.get(names.LABEL_QUEUE_NAME, "") if isinstance(labels, dict) else ""
    return str(value)


def queue_name(ctx: SyncContext) -> str:
    """The LocalQueue the batch being decided is labelled with ("" for none)."""
    return queue_name_of(ctx.batch)


def _view(ctx: SyncContext) -> WorkloadView | None:
    """The Workload view that matters: None when the batch is not queued (or not observed)."""
    return ctx.workload if queue_name(ctx) else None


def admitted(ctx: SyncContext) -> bool:
    """True when a worker may run: no queue, or the Workload is admitted and not evicted."""
    wl = _view(ctx)
    if wl is None:
        return True
    return (
        wl.exists
        and not wl.unavailable
        and wl.active
        and wl.admitted
        and not (wl.evicted or wl.finished or wl.deleting)
    )


def wait_for_admission(ctx: SyncContext) -> None:
    """No worker runs: stop the one running, say why (phase Queued), and move the
    Workload on (create it, clear an evicted one's reservation once stopped)."""
    wl = _view(ctx)
    if wl is None:  # admitted() is True without a view: never called so
        return
    status = ctx.status
    was_queued = _queued(ctx.old.conditions)
    pods.stop_active_worker(ctx)
    at = resume_index(status)
    total = ctx.total
    of_total = f"{at + 1}/{total if total is not None else '?'}"
    queue = queue_name(ctx)
    why = _why_waiting(wl, queue)
    if wl.evicted and not _evicted_said(ctx):
        status.last_failure = EVICTED_BY_KUEUE
        who = wl.preempted_message or wl.evicted_message or "no reason given"
        ctx.event(
            "Normal",
            names.EVENT_EVICTED,
            f"Evicted by Kueue ({wl.evicted_reason or 'Evicted'}): {who}; stopping the "
            f"workers; the batch resumes at item {of_total} or later once admitted again",
        )
    elif not was_queued:
        ctx.event(
            "Normal",
            names.EVENT_QUEUED,
            f"Waiting for admission by Kueue in LocalQueue {queue} (Workload {wl.name}) "
            f"at item {of_total}",
        )
    ctx.set_condition(cond.SUSPENDED, "True", names.REASON_QUEUED, why)
    ctx.set_condition(
        cond.PROGRESSING, "False", names.REASON_QUEUED, f"Queued at item {at + 1}: {why}"
    )
    ctx.decision.workload = _next_step(ctx, wl)
    stopping = bool(ctx.live_pods)
    _look_again(ctx, STOPPING_SECONDS if stopping else QUEUED_RESYNC_SECONDS)


def _why_waiting(wl: WorkloadView, queue: str) -> str:
    """The Queued condition's message."""
    if wl.unavailable:
        return f"Cannot queue in Kueue: {wl.unavailable}."
    if not wl.exists:
        return f"Creating Workload {wl.name} in LocalQueue {queue}."
    requeued = f" (Kueue requeues it at {wl.requeue_at})" if wl.requeue_at else ""
    if wl.evicted:
        return (
            f"Evicted by Kueue ({wl.evicted_reason or 'Evicted'}): "
            f"{wl.preempted_message or wl.evicted_message}; queued again once the workers "
            f"stopped{requeued}."
        )
    if not wl.active:
        return (
            f"Workload {wl.name} is deactivated (spec.active=false); waiting for it to be active."
        )
    if wl.finished or wl.deleting:
        return f"Replacing Workload {wl.name} of an earlier run."
    text = f"Waiting for admission by Kueue in LocalQueue {queue}"
    if wl.pending_message:
        text += f": {wl.pending_message}"
    return text + requeued + "."


def _next_step(ctx: SyncContext, wl: WorkloadView) -> WorkloadPlan | None:
    """What to do with the Workload while the batch waits for it."""
    if wl.unavailable or wl.deleting:
        return None
    if not wl.exists:
        return WorkloadPlan("create", wl.name)
    if wl.finished:
        return WorkloadPlan("delete", wl.name)  # an earlier run's: a new one queues afresh
    if wl.evicted and wl.quota_reserved and not ctx.live_pods:
        # Every worker stopped: give the quota back, so Kueue queues the Workload
        # again (and admits the preemptor), as its job framework does.
        return WorkloadPlan(
            "requeue", wl.name, REASON_PENDING, wl.evicted_message or "Evicted; workers stopped"
        )
    return None


def note_admitted(ctx: SyncContext) -> None:
    """Admitted (or not queued): Suspended goes False once it was Queued, and pods
    created now get the admitted flavours' placement."""
    wl = _view(ctx)
    if wl is None:
        return
    ctx.decision.placement = wl.placement
    if _queued(ctx.status.conditions):
        where = f"ClusterQueue {wl.cluster_queue}" if wl.cluster_queue else "Kueue"
        message = f"Admitted by {where} (Workload {wl.name})."
        ctx.set_condition(cond.SUSPENDED, "False", names.REASON_ADMITTED, message)
        ctx.event("Normal", names.REASON_ADMITTED, message[:-1])


def release(ctx: SyncContext) -> None:
    """Suspended or outside its window: once no worker runs, delete the Workload (its
    quota goes back); a new one is queued when the batch may run again."""
    wl = _view(ctx)
    if wl is None or not wl.exists or wl.deleting or wl.unavailable:
        return
    if ctx.live_pods:
        _look_again(ctx, STOPPING_SECONDS)
        return
    ctx.decision.workload = WorkloadPlan("delete", wl.name)


def finish(ctx: SyncContext) -> None:
    """The batch ended: mark its Workload Finished, which releases the quota."""
    wl = _view(ctx)
    if wl is None or not wl.exists or wl.deleting or wl.unavailable or wl.finished:
        return
    ok = cond.is_true(ctx.status.conditions, cond.SUCCEEDED)
    name = ctx.batch.metadata.name
    ctx.decision.workload = WorkloadPlan(
        "finish",
        wl.name,
        "Succeeded" if ok else "Failed",
        f"ResumableBatch {name} {'succeeded' if ok else 'failed'}",
    )


def _queued(conditions: list[Condition]) -> bool:
    found = cond.find(conditions, cond.SUSPENDED)
    return found is not None and found.status == "True" and found.reason == names.REASON_QUEUED


def _evicted_said(ctx: SyncContext) -> bool:
    """The Queued condition as read already tells of the eviction (its event was sent)."""
    found = cond.find(ctx.old.conditions, cond.SUSPENDED)
    return found is not None and found.message.startswith("Evicted by Kueue")


def _look_again(ctx: SyncContext, seconds: float) -> None:
    requeue = ctx.decision.requeue_after
    ctx.decision.requeue_after = seconds if requeue is None else min(requeue, seconds)
