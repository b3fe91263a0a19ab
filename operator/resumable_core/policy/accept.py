"""First sight of a batch: every condition present, a start time, the runId adopted.

Called by :func:`resumable_core.reconcile.decide` before any other policy.
"""

from __future__ import annotations

from resumable import constants as names
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.progress import progress_text


def is_first_sight(ctx: SyncContext) -> bool:
    """True when the batch has no conditions yet: it was never reconciled."""
    return not ctx.status.conditions


def accept(ctx: SyncContext) -> None:
    """Set the four conditions (Kubernetes api-conventions: on first sight), the start
    time, the runId and the Progress column; say so with an Accepted event."""
    ctx.set_condition(
        cond.SUCCEEDED, "Unknown", cond.REASON_RECONCILING, names.MESSAGE_NOT_SUCCEEDED_YET
    )
    ctx.set_condition(cond.FAILED, "False", cond.REASON_RECONCILING, names.MESSAGE_NOT_FAILED)
    ctx.set_condition(
        cond.SUSPENDED, "False", cond.REASON_NOT_SUSPENDED, names.MESSAGE_NOT_SUSPENDED
    )
    ctx.set_condition(cond.PROGRESSING, "Unknown", cond.REASON_RECONCILING, names.MESSAGE_STARTING)
    status, total = ctx.status, ctx.total
    status.start_time = status.start_time or ctx.stamp
    status.run_id = ctx.spec.run_id
    # The Progress column from the start, also for a batch created suspended.
    status.progress = status.progress or progress_text(0, total)
    items = f"{total} items to process" if total is not None else "the worker counts the items"
    ctx.event("Normal", names.EVENT_ACCEPTED, f"Batch accepted; {items}")
