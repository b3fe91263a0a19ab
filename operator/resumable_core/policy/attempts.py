"""Starting an attempt: its pod's name, where it starts, how it is announced.

The protocol: the new attempt number is written to ``status.checkpoint.attempt``
(the fencing token) with ``status.activePod``, *then* the pod is created with the
deterministic name ``<batch>-<attempt>``. A crash in between leaves a status
naming a pod that does not exist; the next pass treats it as a disruption (not
counted) and moves on, and the name is never reused. Called by
:func:`resumable_core.reconcile.decide`.
"""

from __future__ import annotations

from resumable import constants as names
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import PodPlan
from resumable_core.progress import items_saved, progress_text, resume_index
from resumable_core.times import parse_time

#: How often a running batch is looked at even without events (level-based safety net).
RESYNC_SECONDS = 60.0


def pod_name(batch: str, attempt: int) -> str:
    """The deterministic name of an attempt's pod."""
    return f"{batch}-{attempt}"


def start_attempt(ctx: SyncContext) -> None:
    """Record the next attempt (the fencing token and its pod's name), ask for its pod."""
    status = ctx.status
    attempt = status.checkpoint.attempt + 1
    status.checkpoint.attempt = attempt
    status.active_pod = pod_name(ctx.batch.metadata.name, attempt)
    status.retry_after = ""
    ctx.decision.bump_attempt = True
    ctx.decision.create_pod = plan_pod(ctx)
    announce_start(ctx)
    status.progress = progress_text(items_saved(status), ctx.total)


def plan_pod(ctx: SyncContext) -> PodPlan:
    """The active attempt's pod: where it starts, and whether it runs careful."""
    status = ctx.status
    declared = ctx.spec.total_items
    return PodPlan(
        name=status.active_pod,
        attempt=status.checkpoint.attempt,
        start_index=resume_index(status),
        # What spec.totalItems says (RESUMABLE_TOTAL_ITEMS): a worker given another
        # list goes on saying so in its log.
        total_items=declared if declared is not None else ctx.total,
        careful=status.stall is not None,
        run_id=status.run_id,
    )


def announce_start(ctx: SyncContext) -> None:
    """Progressing and the Started (or Resumed) event for the active attempt.

    The event is for once its pod exists; so is ``resumed_after_seconds``, the
    time from the failure to the new pod (a metric).
    """
    status, total = ctx.status, ctx.total
    attempt, name = status.checkpoint.attempt, status.active_pod
    start = resume_index(status)
    of = total if total is not None else "?"
    if attempt == 1 or (start == 0 and not status.checkpoint.completed):
        # Attempt 1, a rerun, or a restart before anything was saved: say which.
        again = f" after {status.last_failure}" if status.last_failure and attempt > 1 else ""
        ctx.set_condition(
            cond.PROGRESSING,
            "True",
            cond.REASON_POD_CREATED,
            f"Attempt {attempt} started at item 1/{of}.",
        )
        ctx.event(
            "Normal",
            names.EVENT_STARTED,
            f"Started at item 1/{of}{again} (attempt {attempt}, pod {name})",
            once_pod_exists=True,
        )
        return
    after = status.last_failure or "a restart"
    # Every item saved, but the worker died before it could say the batch ended.
    where = (
        f"to finish, all {of} items saved,"
        if total is not None and start >= total
        else f"at item {start + 1}/{of}"
    )
    msg = f"Resumed {where} after {after} (attempt {attempt})"
    ctx.set_condition(cond.PROGRESSING, "True", cond.REASON_RESUMED, msg + ".")
    ctx.event("Normal", cond.REASON_RESUMED, msg, once_pod_exists=True)
    failed_at = parse_time(status.failed_at)
    if failed_at is not None:
        ctx.decision.resumed_after_seconds = max(0.0, (ctx.now - failed_at).total_seconds())
