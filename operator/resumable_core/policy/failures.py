"""How the active attempt ended, and what follows: a table of actions.

In the manner of JobSet's ``failure_policy.go``: :func:`judge_end` classifies the
end (:data:`EndKind`), and :data:`ACTIONS` maps each kind to what it does to the
batch: complete it, restart it (counted, after a backoff), resume it at once (a
disruption, not counted), or fail it (a never-retry exit code; the SDK's usage
error exit, EXIT_USAGE, with the cause the worker saved; a command that could
not start). A counted
failure also counts against the item it died at: an item that kills
spec.retry.maxItemAttempts attempts in a row is a poison item, skipped or
failing the batch as spec.retry.onPoisonItem says.

Called by :mod:`.attempts` once the active attempt's pod has ended or vanished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from resumable import constants as names
from resumable.v1alpha1 import (
    MAX_ERROR_CHARS,
    MAX_SKIPPED_RECORDED,
    ResumableBatchStatus,
    SkippedItem,
    Stall,
)
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import Outcome, PodView
from resumable_core.policy import backoff, terminal
from resumable_core.progress import items_saved, resume_index

#: complete: every item saved (whatever the exit); not-finished: exit 0 with items
#: left; never-retry: an exit code in spec.retry.neverRetryExitCodes; usage: exit
#: EXIT_USAGE (misuse the SDK detected); cannot-start: the command never started
#: (exec failed); disruption: evicted, preempted, deleted or its node lost (not
#: counted); failure: any other.
EndKind = Literal[
    "complete", "not-finished", "never-retry", "usage", "cannot-start", "disruption", "failure"
]
#: How a pod ended, by itself (see :func:`classify`).
PodEndKind = Literal["success", "failure", "disruption", "never-retry", "usage", "cannot-start"]


@dataclass(frozen=True)
class AttemptEnd:
    """How the active attempt's pod ended."""

    pod: PodView
    kind: EndKind
    #: As messages say it: "exit 137", "OOMKilled (exit 137)", "disruption (Evicted)".
    what: str


def classify(pod: PodView, never_retry: list[int]) -> tuple[PodEndKind, str, bool]:
    """(kind, description, counted) for an ended or vanished pod.

    kind is "success", "failure", "disruption", "never-retry", "usage" or
    "cannot-start". Never retried, whatever neverRetryExitCodes says: a usage
    error (exit EXIT_USAGE) and a command that did not start (its exec failed:
    every attempt would fail the same way).
    """
    if pod.disruption:
        return "disruption", f"disruption ({pod.disruption})", False
    if pod.phase == "Succeeded":
        return "success", "exit 0", False
    if pod.deleting:
        # Deleted by someone (kubectl delete pod, a drain without the eviction API):
        # the same whether its end is seen before the pod is gone or only its absence.
        return "disruption", "disruption (PodDeleted)", False
    code = pod.exit_code
    what = f"exit {code}" if code is not None else "failure"
    if pod.reason == "OOMKilled":
        what = f"OOMKilled (exit {code})" if code is not None else "OOMKilled"
    elif pod.reason and pod.reason not in ("Error", "Completed"):
        what = f"{what} ({pod.reason})"
    if pod.reason in names.START_ERROR_REASONS:
        return "cannot-start", what, True
    if code == names.EXIT_USAGE:
        return "usage", f"{what} (a usage error)", True
    if code is not None and code in never_retry:
        return "never-retry", what, True
    return "failure", what, True


def judge_end(ctx: SyncContext, pod: PodView) -> AttemptEnd:
    """Classify the end of the active attempt, by its pod and the checkpoint."""
    kind, what, _counted = classify(pod, ctx.spec.retry.never_retry_exit_codes)
    if ctx.status.checkpoint.finished:
        # Every item was done and saved before the pod ended: nothing to redo.
        return AttemptEnd(
            pod, "complete", what if kind == "success" else f"{what} after the last item"
        )
    if kind == "success":
        total = ctx.total
        of = str(total) if total is not None else "?"
        return AttemptEnd(
            pod, "not-finished", f"exit 0 with {items_saved(ctx.status)}/{of} items done"
        )
    return AttemptEnd(pod, kind, what)


def account_for_end(ctx: SyncContext, pod: PodView) -> bool:
    """Apply the action for how the active attempt ended. Returns True when no new
    attempt may start (the batch ended)."""
    end = judge_end(ctx, pod)
    ctx.status.active_pod = ""
    return ACTIONS[end.kind](ctx, end)


def _complete(ctx: SyncContext, end: AttemptEnd) -> bool:
    terminal.succeed(ctx)
    return True


def _record_end(ctx: SyncContext, end: AttemptEnd) -> None:
    ctx.status.failed_at = ctx.stamp
    ctx.status.last_failure = end.what


def _fail_never_retry(ctx: SyncContext, end: AttemptEnd) -> bool:
    _record_end(ctx, end)
    msg = (
        f"Attempt {ctx.status.checkpoint.attempt} ended with {end.what}, listed in "
        "retry.neverRetryExitCodes; not retried."
    )
    ctx.decision.outcome = Outcome("failed", cond.REASON_NEVER_RETRY)
    terminal.fail(ctx, cond.REASON_NEVER_RETRY, msg)
    return True


def _fail_usage_error(ctx: SyncContext, end: AttemptEnd) -> bool:
    _record_end(ctx, end)
    cp = ctx.status.checkpoint
    saved = (
        cp.last_error and cp.last_error_index is None and cp.context.get("attempt") == cp.attempt
    )
    cause = cp.last_error if saved else "the worker saved no cause: see its log"
    msg = f"Attempt {cp.attempt} ended with {end.what}; not retried: {cause}"
    ctx.decision.outcome = Outcome("failed", cond.REASON_USAGE_ERROR)
    terminal.fail(ctx, cond.REASON_USAGE_ERROR, msg[:MAX_ERROR_CHARS])
    return True


def _fail_cannot_start(ctx: SyncContext, end: AttemptEnd) -> bool:
    _record_end(ctx, end)
    why = end.pod.message or "no reason given"
    msg = (
        f"Attempt {ctx.status.checkpoint.attempt}'s worker {end.pod.name} could not start "
        f"({end.what}): {why}; not retried: fix spec.template.spec.containers[0]"
    )
    ctx.decision.outcome = Outcome("failed", cond.REASON_START_FAILED)
    terminal.fail(ctx, cond.REASON_START_FAILED, msg[:MAX_ERROR_CHARS])
    return True


def _resume_after_disruption(ctx: SyncContext, end: AttemptEnd) -> bool:
    _record_end(ctx, end)
    status = ctx.status
    status.disruptions += 1
    status.retry_after = ""
    ctx.event(
        "Normal",
        names.EVENT_DISRUPTED,
        f"Worker {end.pod.name} ended by {end.what} at item {resume_index(status) + 1}; "
        "not counted against maxRestarts",
    )
    ctx.decision.outcome = Outcome("disrupted", end.pod.disruption or names.DISRUPTION_UNNAMED)
    return False


def _restart_after_exit_0(ctx: SyncContext, end: AttemptEnd) -> bool:
    cp = ctx.status.checkpoint
    total = ctx.total
    of = str(total) if total is not None else "?"
    hint = (
        ""
        if cp.context.get("attempt") == cp.attempt
        else " and without saving any progress (does it call resumable.start() and run.items()?)"
    )
    told = ctx.event(
        "Warning",
        cond.REASON_NOT_FINISHED,
        f"Worker {end.pod.name} exited 0 with items left ({items_saved(ctx.status)}/{of}){hint}",
    )
    ctx.decision.outcome = Outcome("not-finished", cond.REASON_NOT_FINISHED)
    stopped = _restart_after_counted_failure(ctx, end)
    if not stopped:
        ctx.amend_event(told, "; resuming")
    return stopped


def _restart_after_counted_failure(ctx: SyncContext, end: AttemptEnd) -> bool:
    _record_end(ctx, end)
    status, retry = ctx.status, ctx.spec.retry
    position = resume_index(status)
    pod = end.pod
    if ctx.decision.outcome is None:
        ctx.decision.outcome = Outcome(
            "failed",
            pod.reason or (f"Exit{pod.exit_code}" if pod.exit_code is not None else "Unknown"),
        )
    stall = _count_death_at(ctx, position)
    if is_poison(ctx, stall) and _poison_item_fails_batch(ctx, end, stall):
        return True
    if backoff.past_restart_limit(status, retry):
        msg = (
            f"Attempt {status.checkpoint.attempt} ended with {end.what} at item "
            f"{position + 1}; maxRestarts ({retry.max_restarts}) exhausted."
        )
        terminal.fail(ctx, cond.REASON_MAX_RESTARTS, msg)
        return True
    status.restarts += 1
    backoff.schedule_next_attempt(ctx, end.what)
    return False


#: What each kind of end does; True when no new attempt may start.
ACTIONS: dict[EndKind, Callable[[SyncContext, AttemptEnd], bool]] = {
    "complete": _complete,
    "not-finished": _restart_after_exit_0,
    "never-retry": _fail_never_retry,
    "usage": _fail_usage_error,
    "cannot-start": _fail_cannot_start,
    "disruption": _resume_after_disruption,
    "failure": _restart_after_counted_failure,
}


# ------------------------------------------------------------------ poison items


def died_at(ctx: SyncContext, position: int) -> bool:
    """True when this attempt said it died at ``position``, so the death counts
    against that item.

    It saved progress and then recorded an error for that item, exited cleanly,
    or (in careful mode, after an unexplained death) marked the item in flight. A
    worker that ends before it saves anything (it crashed on start, or exited 0
    without using the SDK) blames no item.
    """
    cp = ctx.status.checkpoint
    outcome = ctx.decision.outcome
    return cp.context.get("attempt") == cp.attempt and (
        (outcome is not None and outcome.kind == "not-finished")
        or (cp.last_error_index == position and bool(cp.last_error))
        or cp.inflight == position
    )


def _count_death_at(ctx: SyncContext, position: int) -> Stall:
    """The stall at ``position`` after this death: one more attempt if it died there."""
    return count_death(ctx, position, precise=died_at(ctx, position))


def count_death(ctx: SyncContext, position: int, *, precise: bool) -> Stall:
    """Record a death at ``position`` in ``status.stall``: one more attempt when the death
    was placed there exactly (``precise``), a new stall when it was elsewhere."""
    stall = ctx.status.stall
    if stall is not None and stall.index == position:
        stall = Stall(index=position, attempts=stall.attempts + int(precise))
    else:
        stall = Stall(index=position, attempts=int(precise))
    ctx.status.stall = stall
    return stall


def is_poison(ctx: SyncContext, stall: Stall) -> bool:
    """True when the stalled item killed spec.retry.maxItemAttempts attempts in a row."""
    total = ctx.total
    return (
        stall.attempts > 0
        and stall.attempts >= ctx.spec.retry.max_item_attempts
        and (total is None or stall.index < total)
    )


def _poison_item_fails_batch(ctx: SyncContext, end: AttemptEnd, stall: Stall) -> bool:
    """Skip the poison item, or fail the batch (onPoisonItem Fail, or too many skipped)."""
    return poison_fails_batch(
        ctx, stall, item_error(ctx.status, stall.index, f"worker died: {end.what}")
    )


def poison_fails_batch(ctx: SyncContext, stall: Stall, error: str) -> bool:
    """The stalled item is a poison item (it killed ``stall.attempts`` attempts, the last
    with ``error``): skip it, or fail the batch (onPoisonItem Fail, or too many skipped).
    True when the batch failed."""
    killed = f"Item {stall.index + 1} killed {stall.attempts} attempt(s) in a row (last: {error})"
    if ctx.spec.retry.on_poison_item == "Fail":
        terminal.fail(ctx, cond.REASON_POISON, f"{killed}; retry.onPoisonItem is Fail.")
        return True
    if skipped_list_full(ctx.status):
        msg = f"{killed}; {MAX_SKIPPED_RECORDED} items were skipped already, giving up."
        terminal.fail(ctx, cond.REASON_POISON, msg)
        return True
    skip_item(ctx, stall, error)
    return False


def item_error(status: ResumableBatchStatus, index: int, otherwise: str) -> str:
    """The error the worker recorded for item ``index``, if it did; else ``otherwise``."""
    cp = status.checkpoint
    return cp.last_error if cp.last_error_index == index and cp.last_error else otherwise


def skipped_list_full(status: ResumableBatchStatus) -> bool:
    """True when status.skipped holds as many items as it may."""
    return len(status.skipped) >= MAX_SKIPPED_RECORDED


def skip_item(ctx: SyncContext, stall: Stall, error: str) -> None:
    """Record the stalled item as skipped (the next attempt steps over it), and say so."""
    ctx.status.skipped.append(
        SkippedItem(index=stall.index, attempts=stall.attempts, error=error[:MAX_ERROR_CHARS])
    )
    ctx.status.stall = None
    ctx.event(
        "Warning",
        names.EVENT_ITEM_SKIPPED,
        f"Item {stall.index + 1} skipped after {stall.attempts} attempt(s) died there: {error}",
    )
