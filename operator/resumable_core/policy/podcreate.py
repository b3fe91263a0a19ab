"""What became of creating the active attempt's pod, as the executor reports it.

The executor writes the attempt first and creates its pod after; it tells
decide() how that went (:class:`~resumable_core.decision.PodCreate`) for as long
as no pod view shows the pod. Each result has its action here:

* ``created``: the pod is on its way. If its creation had been refused for now,
  the start held back meanwhile is announced.
* ``retrying``: refused for now (403: a quota, a missing service account; 429,
  5xx). The same attempt waits, counting neither a restart nor a disruption:
  phase Pending, Progressing reason PodCreateRetrying with the server's message,
  and the pod is still asked for (the executor paces the tries).
* ``refused``: invalid (400/422): no retry can fix it, the batch fails with
  reason PodCreateFailed; editing the spec tries again (:mod:`.reopen`).
* ``taken``: another object's pod holds the name (an earlier batch of the same
  name): this attempt never had a pod, so no disruption; the next attempt gets
  the next name.

Called by :mod:`.active` while an attempt is active.
"""

from __future__ import annotations

from collections.abc import Callable

from resumable.v1alpha1 import MAX_ERROR_CHARS
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import CreateResult, PodCreate
from resumable_core.policy import attempts, terminal

#: Longest wait between two tries of a create the API server turned down for now.
CREATE_RETRY_MAX_SECONDS = 300.0


def reported_for_active_attempt(ctx: SyncContext) -> PodCreate | None:
    """The executor's report if it is about the active attempt's pod, not yet seen."""
    create, status = ctx.create, ctx.status
    if (
        create is None
        or create.pod != status.active_pod
        or create.attempt != status.checkpoint.attempt
        or ctx.pod(create.pod) is not None
    ):
        return None
    return create


def follow_create(ctx: SyncContext, create: PodCreate) -> bool:
    """Apply the action for the create's result. Returns True when the decision is
    complete; False when the attempt is off and the next one may start."""
    return ACTIONS[create.result](ctx, create)


def _announce_once_created(ctx: SyncContext, create: PodCreate) -> bool:
    progressing = cond.find(ctx.status.conditions, cond.PROGRESSING)
    if progressing is not None and progressing.reason == cond.REASON_POD_CREATE_RETRYING:
        attempts.announce_start(ctx)  # held back while the create was refused
    ctx.decision.requeue_after = attempts.RESYNC_SECONDS
    return True


def _wait_for_retry(ctx: SyncContext, create: PodCreate) -> bool:
    # The server's message, not the delay (it changes every try: the events say it),
    # so a refusal repeated the same way writes nothing.
    ctx.set_condition(
        cond.PROGRESSING,
        "True",
        cond.REASON_POD_CREATE_RETRYING,
        (
            f"Cannot create pod {create.pod} yet: {create.message}; retrying with "
            f"growing delays up to {CREATE_RETRY_MAX_SECONDS:.0f}s "
            f"(attempt {create.attempt} is kept)."
        )[:MAX_ERROR_CHARS],
    )
    if create.retry_in is not None:
        ctx.event(
            "Warning",
            cond.REASON_POD_CREATE_FAILED,
            f"Cannot create pod {create.pod} yet: {create.message}; "
            f"trying again in {create.retry_in:.0f}s (attempt {create.attempt} is kept)",
        )
    ctx.decision.create_pod = attempts.plan_pod(ctx)
    ctx.decision.requeue_after = attempts.RESYNC_SECONDS
    return True


def _fail_refused(ctx: SyncContext, create: PodCreate) -> bool:
    ctx.status.active_pod = ""
    ctx.status.last_failure = "pod creation refused"
    msg = f"Cannot create pod {create.pod}: {create.message}"[:MAX_ERROR_CHARS]
    terminal.fail(ctx, cond.REASON_POD_CREATE_FAILED, msg)
    return True


def _move_past_taken_name(ctx: SyncContext, create: PodCreate) -> bool:
    ctx.status.active_pod = ""
    return False


#: What each result does; True when the decision is complete.
ACTIONS: dict[CreateResult, Callable[[SyncContext, PodCreate], bool]] = {
    "created": _announce_once_created,
    "retrying": _wait_for_retry,
    "refused": _fail_refused,
    "taken": _move_past_taken_name,
}
