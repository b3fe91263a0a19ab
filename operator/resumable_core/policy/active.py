"""The active attempt: wait while its pod runs, account for its end once it ended.

Called by :func:`resumable_core.reconcile.decide` while ``status.activePod`` names
an attempt. Its pod may be observed (running, ended, stuck on a lost node), not
created yet (the executor's report, :mod:`.podcreate`), or gone without a trace
(a disruption: created and vanished, or never created).
"""

from __future__ import annotations

from resumable import constants as names
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import PodView
from resumable_core.policy import failures, podcreate
from resumable_core.policy.attempts import RESYNC_SECONDS
from resumable_core.progress import resume_index


def watch_active_attempt(ctx: SyncContext) -> bool:
    """Returns True when the decision is complete (no new attempt now)."""
    status = ctx.status
    create = podcreate.reported_for_active_attempt(ctx)
    if create is not None:
        return podcreate.follow_create(ctx, create)
    active = ctx.pod(status.active_pod)
    if active is not None and active.stuck_deleting(ctx.now):
        ctx.delete_pod(active.name, graceful=False)
        active = active.lost()
    if active is not None and not active.ended:
        if active.deleting:
            ctx.decision.requeue_after = 1.0  # wait for it to end before a new attempt
            return True
        if active.phase == "Running":
            ctx.set_condition(
                cond.PROGRESSING,
                "True",
                cond.REASON_RUNNING,
                f"Attempt {status.checkpoint.attempt} running from item "
                f"{resume_index(status) + 1}.",
            )
        ctx.decision.requeue_after = RESYNC_SECONDS
        return True
    if active is None:
        # Created-and-vanished or never created: a disruption either way.
        active = PodView(
            name=status.active_pod,
            attempt=status.checkpoint.attempt,
            phase="Failed",
            disruption=names.DISRUPTION_POD_DELETED,
        )
    return failures.account_for_end(ctx, active)
