"""spec.retrySkipped: give the skipped (poison) items of a batch that succeeded another go.

"Rerun only what failed": the items a batch skipped are tried again and nothing
it completed is redone. Called by :func:`resumable_core.reconcile.decide`; acted
on once the batch has succeeded (a running batch's workers hold their own view
of what is skipped, so a change meanwhile waits for the end, level-based), with
one worker or many.
"""

from __future__ import annotations

from resumable import constants as names
from resumable.ranges import IndexSet
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.progress import progress_text


def adopt_at_first_sight(ctx: SyncContext) -> None:
    """A new batch's spec.retrySkipped is where it starts, not a request."""
    ctx.status.retried_skipped = ctx.spec.retry_skipped


def requested(ctx: SyncContext) -> bool:
    """True when spec.retrySkipped changed since it was last acted on."""
    return ctx.spec.retry_skipped != ctx.status.retried_skipped


def retry_skipped(ctx: SyncContext) -> None:
    """Reopen the succeeded batch with its skipped items back in the pool.

    Every item but the skipped ones stays completed; the restart budget starts
    again, as for a new effort; the next attempt (or the workers) take only
    the items that were skipped.
    """
    status, total = ctx.status, ctx.total
    status.retried_skipped = ctx.spec.retry_skipped
    skipped = IndexSet(s.index for s in status.skipped)
    if not len(skipped) or total is None:
        ctx.event("Normal", names.REASON_RETRY_SKIPPED, "No skipped item to retry")
        return
    cp = status.checkpoint
    done = IndexSet()
    if total:
        done.add_range(0, total - 1)
    cp.completed = str(done.difference(skipped))
    cp.items_done = len(done) - len(skipped)
    cp.finished = False
    cp.next_index = next(iter(skipped))
    status.skipped = []
    status.stall = None
    status.restarts = 0
    for entry in status.workers:
        entry.restarts = 0
        entry.idle = False
    status.completion_time = ""
    status.progress = progress_text(cp.items_done, total)
    which = ", ".join(str(i + 1) for i in skipped)
    ctx.set_condition(
        cond.SUCCEEDED, "Unknown", cond.REASON_RETRY_SKIPPED, names.MESSAGE_RETRY_SKIPPED
    )
    ctx.set_condition(cond.FAILED, "False", cond.REASON_RETRY_SKIPPED, names.MESSAGE_RETRY_SKIPPED)
    ctx.set_condition(
        cond.PROGRESSING,
        "Unknown",
        cond.REASON_RETRY_SKIPPED,
        f"Retrying {len(skipped)} skipped item(s); the other {cp.items_done} stay done.",
    )
    ctx.event(
        "Normal",
        names.REASON_RETRY_SKIPPED,
        f"spec.retrySkipped changed: retrying skipped item(s) {which}; nothing completed is redone",
    )
