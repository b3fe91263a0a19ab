"""A batch that ended (Succeeded or Failed): how it gets there, and what follows.

:func:`succeed` and :func:`fail` are the only ways into a terminal state (the
policies call them); :func:`settle` is what :func:`resumable_core.reconcile.decide`
does for a terminal batch on every later pass: stop leftovers, and delete the
batch once spec.ttlSecondsAfterFinished has passed.
"""

from __future__ import annotations

from datetime import timedelta

from resumable import constants as names
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import Outcome
from resumable_core.policy import pods
from resumable_core.progress import items_saved, progress_text
from resumable_core.times import parse_time


def is_terminal(ctx: SyncContext) -> bool:
    """True when the batch succeeded or failed (and was not reopened in this pass)."""
    c = ctx.status.conditions
    return cond.is_true(c, cond.SUCCEEDED) or cond.is_true(c, cond.FAILED)


def has_succeeded(ctx: SyncContext) -> bool:
    """True when the batch succeeded."""
    return cond.is_true(ctx.status.conditions, cond.SUCCEEDED)


def finished_while_stopped(ctx: SyncContext) -> bool:
    """True when the checkpoint says every item is done but no attempt is active: a
    worker told to stop (spec.suspend, the window's end) finished on its way out.
    Starting another attempt would start over from item 1."""
    return not ctx.status.active_pod and ctx.status.checkpoint.finished


def succeed(ctx: SyncContext) -> None:
    """Every item is done and saved: the batch Succeeded."""
    status, total = ctx.status, ctx.total
    cp = status.checkpoint
    status.completion_time = ctx.stamp
    status.retry_after = ""
    status.stall = None
    status.progress = progress_text(items_saved(status), total)
    # No attempt count: cp.attempt is a fencing token, which a rerun or a refused
    # pod moves on without a worker running.
    msg = (
        f"Completed {progress_text(items_saved(status), total)} items"
        f" ({len(status.skipped)} skipped) after {status.restarts} restart(s) and "
        f"{status.disruptions} disruption(s); {cp.tokens} tokens, ${cp.cost_usd:.4f}"
    )
    ctx.set_condition(cond.SUCCEEDED, "True", cond.REASON_COMPLETED, msg)
    ctx.set_condition(cond.FAILED, "False", cond.REASON_COMPLETED, names.MESSAGE_SUCCEEDED)
    ctx.set_condition(cond.PROGRESSING, "False", cond.REASON_COMPLETED, msg)
    ctx.event("Normal", cond.REASON_COMPLETED, msg)
    ctx.decision.outcome = Outcome("succeeded", cond.REASON_COMPLETED)
    _look_again_at_ttl(ctx)


def fail(ctx: SyncContext, reason: str, msg: str) -> None:
    """The batch Failed, for ``reason``; ``msg`` says why (condition and Warning event).

    The attempt's outcome (for metrics) is the caller's to set: a pod that was
    never created ends no attempt.
    """
    status = ctx.status
    status.completion_time = ctx.stamp
    status.retry_after = ""
    ctx.set_condition(cond.FAILED, "True", reason, msg)
    ctx.set_condition(cond.SUCCEEDED, "False", reason, names.MESSAGE_FAILED)
    ctx.set_condition(cond.PROGRESSING, "False", reason, msg)
    ctx.event("Warning", reason, msg)
    _look_again_at_ttl(ctx)


def settle(ctx: SyncContext) -> None:
    """A terminal batch: stop leftover pods, and delete it once its TTL passed."""
    pods.stop_live_pods(ctx)
    ctx.status.active_pod = ""
    ttl = ctx.spec.ttl_seconds_after_finished
    ended_at = parse_time(ctx.status.completion_time)
    if ttl is not None and ended_at is not None:
        remaining = (ended_at + timedelta(seconds=ttl) - ctx.now).total_seconds()
        if remaining <= 0:
            ctx.decision.delete_batch = True
        else:
            ctx.decision.requeue_after = remaining


def _look_again_at_ttl(ctx: SyncContext) -> None:
    """Just ended: with a TTL, look again when it has passed (then :func:`settle` deletes)."""
    ttl = ctx.spec.ttl_seconds_after_finished
    if ttl is not None:
        ctx.decision.requeue_after = float(ttl)
