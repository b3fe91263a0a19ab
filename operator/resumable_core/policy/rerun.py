"""A new spec.runId: a clean rerun from item 1, the old run's worker fenced out.

Called by :func:`resumable_core.reconcile.decide` right after first sight, and by
:mod:`.recurring` for each scheduled run of a recurring batch.
"""

from __future__ import annotations

from resumable import constants as names
from resumable.v1alpha1 import Checkpoint
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.policy import slots
from resumable_core.progress import progress_text


def run_id_changed(ctx: SyncContext) -> bool:
    """True when spec.runId is not the run the status belongs to."""
    return ctx.spec.run_id != ctx.status.run_id


def start_clean_rerun(
    ctx: SyncContext,
    run_id: str | None = None,
    *,
    reason: str = cond.REASON_RERUN,
    message: str = "",
    event: str = "",
) -> None:
    """Stop the old run's worker and reset the status to a new run's, from item 1.

    ``run_id`` is spec.runId unless given (a scheduled run's); ``message`` (the
    Progressing condition's) and ``event`` say why, when ``reason`` is not a rerun.
    """
    for pod in ctx.pods:
        if not pod.ended and not pod.deleting:
            ctx.delete_pod(pod.name, graceful=True)
    status = ctx.status
    run_id = ctx.spec.run_id if run_id is None else run_id
    # A new fencing token: the old run's worker may still flush on its way out,
    # and its write must be refused, not land in the new run's empty checkpoint.
    status.checkpoint = Checkpoint(attempt=ctx.old.checkpoint.attempt + 1)
    slots.reset_for_rerun(ctx)
    ctx.decision.bump_attempt = True
    status.restarts = 0
    status.disruptions = 0
    status.skipped = []
    status.stall = None
    status.active_pod = ""
    status.retry_after = ""
    status.last_failure = ""
    status.failed_at = ""
    status.completion_time = ""
    status.run_id = run_id
    status.progress = progress_text(0, ctx.total)  # the old run's worker count is gone
    said = names.MESSAGE_RERUN if reason == cond.REASON_RERUN else names.MESSAGE_SCHEDULED_RUN
    ctx.set_condition(cond.SUCCEEDED, "Unknown", reason, said)
    ctx.set_condition(cond.FAILED, "False", reason, said)
    ctx.set_condition(
        cond.PROGRESSING,
        "Unknown",
        reason,
        message or f"Rerun {run_id!r} requested: starting from item 1.",
    )
    ctx.event("Normal", reason, event or f"runId changed to {run_id!r}: clean rerun from item 1")
