"""Which pods must go: stale ones, a batch's leftovers, and ended pods beyond a few.

Called by :func:`resumable_core.reconcile.decide` (stale and leftover pods) and
by the operator after each decision (:func:`ended_pods_to_prune`).
"""

from __future__ import annotations

from resumable_core.context import SyncContext
from resumable_core.decision import PodView

#: Pods whose worker ended kept for `kubectl logs`; older ones are deleted.
KEEP_ENDED_PODS = 3


def delete_stale_pods(ctx: SyncContext) -> None:
    """Pods not of the active attempt (or of a worker slot's) must not run: delete them;
    one a lost node keeps from ending is force-deleted."""
    name = ctx.batch.metadata.name
    current = {ctx.status.active_pod} | {w.pod(name) for w in ctx.status.workers if w.started}
    for pod in ctx.live_pods:
        if pod.name in current:
            continue
        if pod.stuck_deleting(ctx.now):
            ctx.delete_pod(pod.name, graceful=False)
        elif not pod.deleting:
            ctx.delete_pod(pod.name, graceful=True)


def stop_active_worker(ctx: SyncContext) -> None:
    """Stop the one worker gracefully (it saves on SIGTERM) and clear its attempt's
    backoff: a suspension, a closed window and a wait for admission alike."""
    status = ctx.status
    active = ctx.pod(status.active_pod)
    if active is not None and not active.ended and not active.deleting:
        ctx.delete_pod(active.name, graceful=True)
    status.active_pod = ""
    status.retry_after = ""


def stop_live_pods(ctx: SyncContext) -> None:
    """Gracefully delete every live pod not being deleted already."""
    for pod in ctx.live_pods:
        if not pod.deleting:
            ctx.delete_pod(pod.name, graceful=True)


def a_pod_still_live(ctx: SyncContext) -> bool:
    """True while a pod is live that a lost node does not hold: the next attempt
    waits for it, so that two pods never run at once."""
    return any(not p.ended and not p.stuck_deleting(ctx.now) for p in ctx.pods)


def ended_pods_to_prune(pods: list[PodView], active: str) -> list[str]:
    """Ended pods beyond the newest :data:`KEEP_ENDED_PODS`, oldest first."""
    ended = sorted(
        (p for p in pods if p.ended and p.name != active and not p.deleting),
        key=lambda p: p.attempt,
    )
    return [p.name for p in ended[:-KEEP_ENDED_PODS]] if len(ended) > KEEP_ENDED_PODS else []
