"""The worker's item count against spec.totalItems: a condition and one Warning.

Called by :func:`resumable_core.reconcile.decide` on every pass.
"""

from __future__ import annotations

from resumable_core import conditions as cond
from resumable_core.context import SyncContext


def note_item_count_mismatch(ctx: SyncContext) -> None:
    """Say so, once, when the worker's item count is not spec.totalItems.

    A condition records it, so the Warning event is sent when the mismatch is first
    seen, not on every pass; the condition goes when the two agree again (the spec
    was corrected, or a rerun's worker has not counted yet).
    """
    status = ctx.status
    declared = ctx.spec.total_items
    reported = status.checkpoint.total_items
    seen = cond.find(status.conditions, cond.TOTAL_ITEMS_MISMATCH)
    if declared is None or reported is None or declared == reported:
        if seen is not None:
            status.conditions.remove(seen)
        return
    if seen is None:
        ctx.event(
            "Warning",
            cond.REASON_TOTAL_ITEMS_MISMATCH,
            f"spec.totalItems was {declared} but the worker has {reported} items; "
            f"progress and messages use the worker's {reported}",
        )
    ctx.set_condition(
        cond.TOTAL_ITEMS_MISMATCH,
        "True",
        cond.REASON_WORKER_COUNT,
        f"spec.totalItems is {declared} but the worker has {reported} items.",
    )
