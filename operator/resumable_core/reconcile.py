"""The decision logic: given a batch and its observed worker pods, decide what to do.

Pure and level-based: :func:`decide` reads only its arguments and returns a
:class:`Decision` (the new status, a pod to create, pods to delete, events,
when to look again). It is called by the operator (``controller.py``, around real
pods) and by the local runner (``resumable run``, around subprocesses), so both
restart, back off, skip poison items, suspend, keep to a time window and end the
same way. Calling it twice on the same observation gives the same answer, and the
executor writes nothing when the status did not change, so duplicate or missed
events do not matter.

:func:`decide` is a readable sequence, like the Kubernetes job controller's
``syncJob``: each rule lives in its own module under :mod:`resumable_core.policy`
and works on one :class:`~resumable_core.context.SyncContext`. Each name has
one home: the value types in :mod:`resumable_core.decision`, counts and positions
in :mod:`resumable_core.progress`, times in :mod:`resumable_core.times`, window
arithmetic in :mod:`resumable_core.windows`.

Words, each with one meaning: a pod (or the worker in it) *ends*; a batch that
succeeded or failed is *terminal*; a checkpoint is *finished* once every item is
done and saved (``checkpoint.finished``, the worker's word; an attempt that exits
0 before that is "not finished"). spec.ttlSecondsAfterFinished is the API's name
for the time a terminal batch is kept.
"""

from __future__ import annotations

from datetime import datetime

from resumable.v1alpha1 import ResumableBatch
from resumable_core.context import SyncContext
from resumable_core.decision import Decision, EventPlan, PodCreate, PodView, WorkloadView
from resumable_core.policy import (
    accept,
    active,
    admission,
    attempts,
    backoff,
    pods,
    recurring,
    reopen,
    rerun,
    retryskipped,
    slots,
    suspend,
    terminal,
    totals,
    window,
)

#: The value types the executors pass in and get back, beside decide() (they are
#: defined in :mod:`resumable_core.decision`).
__all__ = ["Decision", "EventPlan", "PodCreate", "PodView", "WorkloadView", "decide"]


def decide(
    batch: ResumableBatch,
    pods_seen: list[PodView],
    now: datetime,
    *,
    create: PodCreate | None = None,
    workload: WorkloadView | None = None,
) -> Decision:
    """Decide the next actions for one batch from what is observed now.

    ``create`` is the executor's report on creating the active attempt's pod while
    no pod view shows it (see :mod:`resumable_core.policy.podcreate`); ``workload``
    the batch's Kueue Workload, for a batch labelled with a queue (see
    :mod:`resumable_core.policy.admission`; None: queues are ignored).
    """
    ctx = SyncContext.begin(batch, pods_seen, now, create=create, workload=workload)
    _sync(ctx)
    if terminal.is_terminal(ctx):
        admission.finish(ctx)  # in the pass that ends the batch: the quota goes back now
    reopen.record_failed_spec(ctx)
    window.record(ctx)
    return ctx.conclude()


def _sync(ctx: SyncContext) -> None:
    """Each rule in turn; a rule that settles what happens now ends the sequence."""
    if accept.is_first_sight(ctx):
        accept.accept(ctx)
        retryskipped.adopt_at_first_sight(ctx)
    if recurring.recurrence(ctx) is not None:
        if recurring.new_run_due(ctx):
            recurring.start_scheduled_run(ctx)
            retryskipped.adopt_at_first_sight(ctx)
    elif rerun.run_id_changed(ctx):
        rerun.start_clean_rerun(ctx)
        retryskipped.adopt_at_first_sight(ctx)
    if retryskipped.requested(ctx) and terminal.has_succeeded(ctx):
        retryskipped.retry_skipped(ctx)
    totals.note_item_count_mismatch(ctx)
    reopen.reopen_if_fixed(ctx)
    pods.delete_stale_pods(ctx)
    if ctx.batch.metadata.deletion_timestamp:
        # Being deleted (a foreground deletion, another tool's finalizer): no new
        # worker; the garbage collector removes the pods it has.
        pods.stop_live_pods(ctx)
        return
    if terminal.is_terminal(ctx):
        terminal.settle(ctx)
        return
    if not slots.is_parallel(ctx) and terminal.finished_while_stopped(ctx):
        terminal.succeed(ctx)
        return
    if ctx.spec.suspend:
        slots.stop_all(ctx)
        suspend.suspend(ctx)
        admission.release(ctx)
        return
    if window.outside_window(ctx):
        slots.stop_all(ctx)
        window.wait_for_window(ctx)
        admission.release(ctx)
        return
    window.note_open(ctx)
    if not admission.admitted(ctx):
        # Labelled with a Kueue queue and not admitted (or evicted): no worker runs.
        slots.stop_all(ctx)
        admission.wait_for_admission(ctx)
        return
    admission.note_admitted(ctx)
    suspend.lift_suspension(ctx)
    if slots.is_parallel(ctx):
        # Many workers, each claiming chunks (spec.parallelism > 1); a single
        # worker still running when parallelism was raised is stopped first.
        if not slots.single_worker_stopping(ctx):
            slots.sync_slots(ctx)
        return
    if ctx.status.active_pod and active.watch_active_attempt(ctx):
        return
    if pods.a_pod_still_live(ctx):
        ctx.decision.requeue_after = 1.0  # never two live pods: wait for the old one
        return
    remaining = backoff.backoff_remaining(ctx)
    if remaining is not None:
        ctx.decision.requeue_after = remaining
        return
    attempts.start_attempt(ctx)
