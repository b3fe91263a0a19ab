"""The restart budget (spec.retry.maxRestarts) and the delay before the next attempt.

Called by :mod:`.failures` after a counted failure, by :mod:`.reopen` when an
edit reopens a failed batch, and by :func:`resumable_core.reconcile.decide`
before it starts an attempt.
"""

from __future__ import annotations

from datetime import timedelta

from resumable import constants as names
from resumable.v1alpha1 import ResumableBatchStatus, RetryPolicy
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.progress import resume_index
from resumable_core.times import format_precise_time, parse_time, seconds_text


def past_restart_limit(status: ResumableBatchStatus, retry: RetryPolicy) -> bool:
    """True when every restart spec.retry.maxRestarts allows has been used."""
    return status.restarts >= retry.max_restarts


def schedule_next_attempt(ctx: SyncContext, what: str) -> None:
    """After a counted restart: the next attempt waits the backoff for this restart.

    ``retryAfter`` is written to the microsecond, so the announced delay is the delay.
    """
    status, retry = ctx.status, ctx.spec.retry
    delay = retry.backoff.delay(status.restarts)
    if delay <= 0:
        status.retry_after = ""
        return
    status.retry_after = format_precise_time(ctx.now + timedelta(seconds=delay))
    attempt = status.checkpoint.attempt
    ctx.set_condition(
        cond.PROGRESSING,
        "True",
        cond.REASON_BACKOFF,
        f"Attempt {attempt} ended with {what}; "
        f"resuming at item {resume_index(status) + 1} in {seconds_text(delay)}.",
    )
    ctx.event(
        "Warning",
        names.EVENT_ATTEMPT_FAILED,
        f"Attempt {attempt} ended with {what}; "
        f"restart {status.restarts}/{retry.max_restarts} in {seconds_text(delay)}",
    )


def backoff_remaining(ctx: SyncContext) -> float | None:
    """Seconds until status.retryAfter (at least 0.05), or None when it is not ahead."""
    retry_at = parse_time(ctx.status.retry_after)
    if retry_at is None or retry_at <= ctx.now:
        return None
    return max(0.05, (retry_at - ctx.now).total_seconds())
