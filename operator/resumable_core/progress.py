"""Where a batch stands: its item count, where the next attempt starts, the display columns.

Read by the decision logic (:mod:`resumable_core.reconcile` and its policies), the
CLI (``resumable status``) and the hints; pure functions of the batch and status.
"""

from __future__ import annotations

from resumable import claims
from resumable import constants as names
from resumable.ranges import IndexSet
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_core import conditions as cond
from resumable_core.times import parse_time


def total_items(batch: ResumableBatch, status: ResumableBatchStatus | None = None) -> int | None:
    """The item count: the worker's own once it reported one, else spec.totalItems.

    A worker whose list is not spec.totalItems long goes by its list (the SDK warns
    in its log), so progress and messages go by it too.
    """
    reported = (status if status is not None else batch.status).checkpoint.total_items
    return reported if reported is not None else batch.spec.total_items


def progress_text(done: int, total: int | None) -> str:
    """The Progress column: "47/200", or "47" while the total is unknown."""
    return f"{done}/{total}" if total is not None else str(done)


def items_saved(status: ResumableBatchStatus) -> int:
    """Items the checkpoint holds as done: its count once finished, else the completed set."""
    return claims.progress_count(status)  # with parallel workers, their slots' too


def attempt_rate(status: ResumableBatchStatus) -> float | None:
    """Items per second of the checkpoint's attempt, as far as it saved: None until
    it saved items over a second or more (or the worker is older than these fields).

    From the checkpoint alone (the SDK saves when the attempt began and what was
    done then), so a status read once, in a cluster or locally, shows a rate.
    """
    cp = status.checkpoint
    context = cp.context
    began = parse_time(str(context.get("startedAt") or ""))
    saved = parse_time(cp.updated_at)
    at_start = context.get("doneAtStart")
    if began is None or saved is None or not isinstance(at_start, int):
        return None
    seconds = (saved - began).total_seconds()
    done = items_saved(status) - at_start
    if seconds < 1 or done <= 0:
        return None
    return done / seconds


def resume_index(status: ResumableBatchStatus) -> int:
    """Where the next attempt starts: the first item neither completed nor skipped."""
    cp = status.checkpoint
    if cp.finished:
        return 0
    completed = IndexSet.parse(cp.completed)
    skipped = {s.index for s in status.skipped}
    index = cp.next_index
    while True:
        index = completed.first_missing(index)
        if index not in skipped:
            return index
        index += 1


def derive_phase(status: ResumableBatchStatus) -> str:
    """The display phase, from the conditions (and the active attempt)."""
    c = status.conditions
    if cond.is_true(c, cond.SUCCEEDED):
        return names.PHASE_SUCCEEDED
    if cond.is_true(c, cond.FAILED):
        return names.PHASE_FAILED
    suspended = cond.find(c, cond.SUSPENDED)
    if suspended is not None and suspended.status == "True":
        if suspended.reason == cond.REASON_OUTSIDE_WINDOW:
            return names.PHASE_WAITING
        if suspended.reason == names.REASON_QUEUED:
            return names.PHASE_QUEUED
        return names.PHASE_SUSPENDED
    if status.active_pod or any(w.started for w in status.workers):
        progressing = cond.find(c, cond.PROGRESSING)
        if progressing is not None and progressing.reason == cond.REASON_POD_CREATE_RETRYING:
            return names.PHASE_PENDING  # the attempt is recorded, its pod not created yet
        return names.PHASE_RUNNING
    if status.retry_after or any(w.retry_after for w in status.workers):
        return names.PHASE_BACKING_OFF
    return names.PHASE_PENDING
