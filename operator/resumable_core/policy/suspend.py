"""spec.suspend: stop the worker and start none; lifting it resumes from the checkpoint.

Called by :func:`resumable_core.reconcile.decide` for a batch that has not ended.
"""

from __future__ import annotations

from resumable import constants as names
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.policy import pods
from resumable_core.progress import resume_index


def suspend(ctx: SyncContext) -> None:
    """Stop the active worker gracefully, clear the attempt's backoff, set Suspended."""
    status = ctx.status
    pods.stop_active_worker(ctx)
    ctx.set_condition(cond.SUSPENDED, "True", cond.REASON_SUSPENDED, names.MESSAGE_SUSPENDED)
    at = resume_index(status)
    ctx.set_condition(
        cond.PROGRESSING,
        "False",
        cond.REASON_SUSPENDED,
        f"Suspended at item {at + 1}; set spec.suspend=false to resume.",
    )
    total = ctx.total
    of_total = f"{at + 1}/{total if total is not None else '?'}"
    if ctx.old.active_pod:
        # Sent as the worker is told to stop, before its exit flush: the position
        # is a lower bound (the condition above follows the flush).
        ctx.event(
            "Normal",
            names.EVENT_SUSPENDED,
            f"Suspending: stopping the worker; the batch resumes at item {of_total} "
            "or later, as the worker saves what it finished on its way out",
        )
    elif not cond.is_true(ctx.old.conditions, cond.SUSPENDED):
        ctx.event("Normal", names.EVENT_SUSPENDED, f"Suspended at item {of_total}")


def lift_suspension(ctx: SyncContext) -> None:
    """spec.suspend is false again: Suspended goes False, and the next attempt's
    Resumed event names the suspend, not an older crash."""
    if cond.is_true(ctx.status.conditions, cond.SUSPENDED):
        ctx.set_condition(
            cond.SUSPENDED, "False", cond.REASON_NOT_SUSPENDED, names.MESSAGE_UNSUSPENDED
        )
        ctx.status.last_failure = "suspend"
