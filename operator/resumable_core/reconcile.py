"""The decision logic: given a batch and its observed worker pods, decide what to do.

Pure and level-based: :func:`decide` reads only its arguments and returns a
:class:`Decision` (the new status, a pod to create, pods to delete, events,
when to look again). It is called by the operator (``controller.py``, around real
pods) and by the local runner (``resumable run``, around subprocesses), so both
restart, back off, skip poison items, suspend and finish the same way. Calling
it twice on the same observation gives the same answer, and the executor writes
nothing when the status did not change, so duplicate or missed events do not
matter.

The protocol, per attempt:
1. The new attempt number is written to ``status.checkpoint.attempt`` (the
   fencing token) together with ``status.activePod``, *then* the pod is created
   with a deterministic name ``<batch>-<attempt>``. A crash in between leaves a
   status naming a pod that does not exist; the next pass treats it as a
   disruption (not counted) and moves on, and the name can never be reused.
2. When the active pod ends, the outcome is classified (success, counted
   failure, disruption, never-retry), counted, and the next attempt is
   scheduled after the backoff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from resumable import constants as names
from resumable._ranges import IndexSet
from resumable.constants import LABEL_ATTEMPT, LABEL_BATCH, LABEL_RUN_ID
from resumable.v1alpha1 import (
    MAX_ERROR_CHARS,
    MAX_SKIPPED_RECORDED,
    Checkpoint,
    ResumableBatch,
    ResumableBatchSpec,
    ResumableBatchStatus,
    SkippedItem,
    Stall,
)
from resumable_core import conditions as cond
from resumable_core.decision import (
    LOST_POD_SECONDS,
    Decision,
    EventPlan,
    EventType,
    Outcome,
    PodPhase,
    PodPlan,
    PodView,
)
from resumable_core.times import format_precise_time, format_time, parse_time, seconds_text

__all__ = [  # re-exported for the CLI and the executors
    "LABEL_ATTEMPT",
    "LABEL_BATCH",
    "LABEL_RUN_ID",
    "LOST_POD_SECONDS",
    "Decision",
    "EventPlan",
    "EventType",
    "Outcome",
    "PodPhase",
    "PodPlan",
    "PodView",
    "format_precise_time",
    "format_time",
    "parse_time",
    "seconds_text",
]

#: Terminated pods kept for `kubectl logs`; older ones are deleted.
KEEP_FINISHED_PODS = 3
#: How often a running batch is looked at even without events (level-based safety net).
RESYNC_SECONDS = 60.0

ConditionFn = Callable[[str, cond.Status, str, str], None]
EventFn = Callable[[EventType, str, str], None]


def pod_name(batch: str, attempt: int) -> str:
    """The deterministic name of an attempt's pod."""
    return f"{batch}-{attempt}"


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
        return "Succeeded"
    if cond.is_true(c, cond.FAILED):
        return "Failed"
    if cond.is_true(c, cond.SUSPENDED):
        return "Suspended"
    if status.active_pod:
        progressing = cond.find(c, cond.PROGRESSING)
        if progressing is not None and progressing.reason == cond.REASON_POD_CREATE_RETRYING:
            return "Pending"  # the attempt is recorded, its pod not created yet
        return "Running"
    if status.retry_after:
        return "BackingOff"
    return "Pending"


def classify(pod: PodView, never_retry: list[int]) -> tuple[str, str, bool]:
    """(kind, description, counted) for a finished or vanished pod.

    kind is "success", "failure", "disruption" or "never-retry".
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
    if code is not None and code in never_retry:
        return "never-retry", what, True
    return "failure", what, True


#: The spec's fields an edit of which may fix a failed batch (see spec_digest).
FIXING_FIELDS: dict[str, bool | set[str]] = {
    "template": True,
    "retry": {"never_retry_exit_codes", "max_item_attempts", "on_poison_item"},
}


def spec_digest(spec: ResumableBatchSpec) -> str:
    """A digest of what an edit may fix a failure with: the pod template, and the
    retry rules that judged it (never-retry exit codes, poison items).

    A failed batch records it (``status.failedSpec``); a spec edit reopens the batch
    only when this changed: not for suspend, ttlSecondsAfterFinished kept for a
    post-mortem, or maxRestarts (which reopens by its own rule).
    """
    parts = spec.model_dump(by_alias=True, exclude_none=True, mode="json", include=FIXING_FIELDS)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def decide(batch: ResumableBatch, pods: list[PodView], now: datetime) -> Decision:
    """Decide the next actions for one batch from what is observed now."""
    decision = _decide(batch, pods, now)
    status = decision.status
    failed = cond.find(status.conditions, cond.FAILED)
    if failed is not None and failed.status == "True":
        if not status.failed_spec:  # just failed: what the failure was judged by
            status.failed_spec = spec_digest(batch.spec)
            decision.status_changed = True
    elif status.failed_spec:  # reopened
        status.failed_spec = ""
        decision.status_changed = True
    return decision


def _decide(batch: ResumableBatch, pods: list[PodView], now: datetime) -> Decision:
    old = batch.status
    status = old.model_copy(deep=True)
    spec = batch.spec
    gen = batch.metadata.generation
    stamp = format_time(now)
    status.observed_generation = gen
    decision = Decision(status=status)
    by_name = {p.name: p for p in pods}
    total = total_items(batch)

    def event(kind: EventType, reason: str, message: str) -> None:
        decision.events.append(EventPlan(kind, reason, message))

    def condition(type_: str, value: cond.Status, reason: str, message: str) -> None:
        cond.set_condition(
            status.conditions, type_, value, reason, message, generation=gen, now=stamp
        )

    def progressing(value: cond.Status, reason: str, message: str) -> None:
        condition(cond.PROGRESSING, value, reason, message)

    # First sight: every condition present, a start time, the runId adopted.
    if not status.conditions:
        condition(
            cond.SUCCEEDED, "Unknown", cond.REASON_RECONCILING, names.MESSAGE_NOT_SUCCEEDED_YET
        )
        condition(cond.FAILED, "False", cond.REASON_RECONCILING, names.MESSAGE_NOT_FAILED)
        condition(cond.SUSPENDED, "False", cond.REASON_NOT_SUSPENDED, names.MESSAGE_NOT_SUSPENDED)
        progressing("Unknown", cond.REASON_RECONCILING, names.MESSAGE_STARTING)
        status.start_time = status.start_time or stamp
        status.run_id = spec.run_id
        # The Progress column from the start, also for a batch created suspended.
        status.progress = status.progress or progress_text(0, total)
        items = f"{total} items to process" if total is not None else "the worker counts the items"
        event("Normal", names.EVENT_ACCEPTED, f"Batch accepted; {items}")

    finished = cond.is_true(status.conditions, cond.SUCCEEDED) or cond.is_true(
        status.conditions, cond.FAILED
    )

    # A new runId: a clean rerun from item 0.
    if spec.run_id != status.run_id:
        for pod in pods:
            if not pod.ended and not pod.deleting:
                decision.delete_pods.append((pod.name, True))
        # A new fencing token: the old run's worker may still flush on its way out,
        # and its write must be refused, not land in the new run's empty checkpoint.
        status.checkpoint = Checkpoint(attempt=old.checkpoint.attempt + 1)
        decision.bump_attempt = True
        status.restarts = 0
        status.disruptions = 0
        status.skipped = []
        status.stall = None
        status.active_pod = ""
        status.retry_after = ""
        status.last_failure = ""
        status.failed_at = ""
        status.completion_time = ""
        status.run_id = spec.run_id
        total = total_items(batch, status)  # the old run's worker count is gone with it
        status.progress = progress_text(0, total)
        condition(cond.SUCCEEDED, "Unknown", cond.REASON_RERUN, names.MESSAGE_RERUN)
        condition(cond.FAILED, "False", cond.REASON_RERUN, names.MESSAGE_RERUN)
        progressing(
            "Unknown", cond.REASON_RERUN, f"Rerun {spec.run_id!r} requested: starting from item 1."
        )
        event(
            "Normal",
            cond.REASON_RERUN,
            f"runId changed to {spec.run_id!r}: clean rerun from item 1",
        )
        finished = False

    _check_total(batch, status, condition, event)

    # A failed batch goes on from its checkpoint, not from item 1, when what failed
    # it may have been fixed: the work done stays done. (Level-based: the spec and
    # the status say so, whatever the event.)
    failed = cond.find(status.conditions, cond.FAILED)
    failed_by = failed.reason if finished and failed is not None and failed.status == "True" else ""
    if status.failed_spec:
        # Only an edit of what may have caused the failure reopens the batch (not
        # suspend, not ttlSecondsAfterFinished kept for a post-mortem).
        edited = status.failed_spec != spec_digest(spec)
    else:  # failed before failedSpec was recorded
        edited = gen is not None and old.observed_generation != gen
    if failed_by == cond.REASON_POD_CREATE_FAILED and edited:
        # The API server refused the worker pod; the spec was edited since (a fixed
        # template, say): try again from the checkpoint, not from item 1.
        msg = names.MESSAGE_SPEC_CHANGED_CREATE_AGAIN
        condition(cond.FAILED, "False", cond.REASON_SPEC_CHANGED, msg)
        condition(cond.SUCCEEDED, "Unknown", cond.REASON_SPEC_CHANGED, names.MESSAGE_RETRYING)
        progressing("Unknown", cond.REASON_SPEC_CHANGED, msg)
        event("Normal", cond.REASON_SPEC_CHANGED, msg.removesuffix("."))
        status.completion_time = ""
        status.retry_after = ""
        status.active_pod = ""
        finished = False
    elif failed_by in (cond.REASON_NEVER_RETRY, cond.REASON_POISON) and edited:
        # An exit code or an item failed it; the spec was edited since (a fixed
        # image, an exit code taken off the list, onPoisonItem or maxItemAttempts
        # changed): the failed attempt is judged again by the edited spec's rules.
        finished = not _reopen_edited(batch, status, failed_by, condition, event)
    elif failed_by == cond.REASON_MAX_RESTARTS and spec.retry.max_restarts > status.restarts:
        at = resume_index(status)
        msg = (
            f"spec.retry.maxRestarts raised to {spec.retry.max_restarts} "
            f"({status.restarts} used): going on from item {at + 1}."
        )
        condition(cond.FAILED, "False", cond.REASON_RESTARTS_RAISED, msg)
        condition(cond.SUCCEEDED, "Unknown", cond.REASON_RESTARTS_RAISED, names.MESSAGE_RETRYING)
        progressing("Unknown", cond.REASON_RESTARTS_RAISED, msg)
        event("Normal", cond.REASON_RESTARTS_RAISED, msg.removesuffix("."))
        # The attempt this starts is the restart after the failure that exhausted
        # the limit: counted, so a raise by one allows exactly one more restart.
        status.restarts += 1
        status.completion_time = ""
        status.retry_after = ""
        finished = False

    live = [p for p in pods if not p.ended]
    active = by_name.get(status.active_pod) if status.active_pod else None

    # Stale pods (not the active attempt) must not run: delete them; one that a
    # lost node keeps from ending is force-deleted.
    for pod in live:
        if pod.name == status.active_pod:
            continue
        if pod.stuck_deleting(now):
            decision.delete_pods.append((pod.name, False))
        elif not pod.deleting and (pod.name, True) not in decision.delete_pods:
            decision.delete_pods.append((pod.name, True))

    # A batch being deleted (a foreground deletion, another tool's finalizer) gets
    # no new worker; the garbage collector removes the pods it has.
    if batch.metadata.deletion_timestamp:
        for pod in live:
            if not pod.deleting and (pod.name, True) not in decision.delete_pods:
                decision.delete_pods.append((pod.name, True))
        return _finish_decision(old, status, decision)

    if finished:
        return _finished(batch, status, decision, live, now)

    # Suspension.
    if spec.suspend:
        if active is not None and not active.ended and not active.deleting:
            decision.delete_pods.append((active.name, True))
        if status.active_pod:
            status.active_pod = ""
        status.retry_after = ""
        condition(
            cond.SUSPENDED,
            "True",
            cond.REASON_SUSPENDED,
            names.MESSAGE_SUSPENDED,
        )
        at = resume_index(status)
        progressing(
            "False",
            cond.REASON_SUSPENDED,
            f"Suspended at item {at + 1}; set spec.suspend=false to resume.",
        )
        of_total = f"{at + 1}/{total if total is not None else '?'}"
        if old.active_pod:
            # Sent as the worker is told to stop, before its exit flush: the
            # position is a lower bound (the condition above follows the flush).
            event(
                "Normal",
                names.EVENT_SUSPENDED,
                f"Suspending: stopping the worker; the batch resumes at item {of_total} "
                "or later, as the worker saves what it finished on its way out",
            )
        elif not cond.is_true(old.conditions, cond.SUSPENDED):
            event(
                "Normal", names.EVENT_SUSPENDED, f"Suspended at item {of_total}"
            )  # nothing running
        return _finish_decision(old, status, decision)
    if cond.is_true(status.conditions, cond.SUSPENDED):
        condition(cond.SUSPENDED, "False", cond.REASON_NOT_SUSPENDED, names.MESSAGE_UNSUSPENDED)
        status.last_failure = "suspend"  # what the Resumed event names, not an older crash

    # The active attempt.
    if status.active_pod:
        if active is not None and active.stuck_deleting(now):
            decision.delete_pods.append((active.name, False))
            active = PodView(
                name=active.name,
                attempt=active.attempt,
                phase="Failed",
                disruption=active.disruption or "NodeLost",
                deleting=True,
            )
        if active is not None and not active.ended:
            if active.deleting:
                decision.requeue_after = 1.0  # wait for it to end before a new attempt
                return _finish_decision(old, status, decision)
            if active.phase == "Running":
                at = resume_index(status)
                progressing(
                    "True",
                    cond.REASON_RUNNING,
                    f"Attempt {status.checkpoint.attempt} running from item {at + 1}.",
                )
            decision.requeue_after = RESYNC_SECONDS
            return _finish_decision(old, status, decision)
        if active is None:
            # Created-and-vanished or never created: a disruption either way.
            view = PodView(
                name=status.active_pod,
                attempt=status.checkpoint.attempt,
                phase="Failed",
                disruption="PodDeleted",
            )
        else:
            view = active
        stop = _handle_end(batch, status, decision, view, now, condition, event)
        if stop:
            return _finish_decision(old, status, decision)

    # No active pod: wait for the backoff, then start the next attempt.
    if any(not p.ended and not p.stuck_deleting(now) for p in pods):
        # Never two live pods: wait for the old one (unless a lost node holds it).
        decision.requeue_after = 1.0
        return _finish_decision(old, status, decision)
    retry_at = parse_time(status.retry_after)
    if retry_at is not None and retry_at > now:
        decision.requeue_after = max(0.05, (retry_at - now).total_seconds())
        return _finish_decision(old, status, decision)
    _start_attempt(batch, status, decision, now, progressing, event)
    return _finish_decision(old, status, decision)


def _handle_end(
    batch: ResumableBatch,
    status: ResumableBatchStatus,
    decision: Decision,
    pod: PodView,
    now: datetime,
    condition: ConditionFn,
    event: EventFn,
) -> bool:
    """Account for the active pod's end. Returns True when no new attempt may start."""
    spec = batch.spec
    total = total_items(batch, status)
    stamp = format_time(now)
    cp = status.checkpoint
    kind, what, _counted = classify(pod, spec.retry.never_retry_exit_codes)
    ttl = spec.ttl_seconds_after_finished
    if cp.finished and kind != "success":
        # Every item was done and saved before the pod ended: nothing to redo.
        kind, what = "success", f"{what} after the last item"
    status.active_pod = ""
    not_finished: int | None = None
    done = cp.items_done if cp.finished else len(IndexSet.parse(cp.completed))
    of = str(total) if total is not None else "?"

    if kind == "success":
        if cp.finished:
            status.completion_time = stamp
            status.retry_after = ""
            status.stall = None
            status.progress = progress_text(cp.items_done, total)
            # No attempt count: cp.attempt is a fencing token, which a rerun or a
            # refused pod moves on without a worker running.
            msg = (
                f"Completed {progress_text(cp.items_done, total)} items"
                f" ({len(status.skipped)} skipped) after {status.restarts} restart(s) and "
                f"{status.disruptions} disruption(s); {cp.tokens} tokens, ${cp.cost_usd:.4f}"
            )
            condition(cond.SUCCEEDED, "True", cond.REASON_COMPLETED, msg)
            condition(cond.FAILED, "False", cond.REASON_COMPLETED, names.MESSAGE_SUCCEEDED)
            condition(cond.PROGRESSING, "False", cond.REASON_COMPLETED, msg)
            event("Normal", cond.REASON_COMPLETED, msg)
            decision.outcome = Outcome("succeeded", cond.REASON_COMPLETED)
            if ttl is not None:
                decision.requeue_after = float(ttl)
            return True
        kind, what = "failure", f"exit 0 with {done}/{of} items done"
        hint = (
            ""
            if cp.context.get("attempt") == cp.attempt
            else " and without saving any progress (does it call resumable.start() "
            "and run.items()?)"
        )
        event(
            "Warning",
            cond.REASON_NOT_FINISHED,
            f"Worker {pod.name} exited 0 with items left ({done}/{of}){hint}",
        )
        not_finished = len(decision.events) - 1  # "; resuming" is added if a restart follows
        decision.outcome = Outcome("not-finished", cond.REASON_NOT_FINISHED)

    status.failed_at = stamp
    status.last_failure = what
    position = resume_index(status)
    if kind == "never-retry":
        msg = (
            f"Attempt {cp.attempt} ended with {what}, listed in retry.neverRetryExitCodes; "
            "not retried."
        )
        _fail(status, decision, cond.REASON_NEVER_RETRY, msg, condition, event, stamp, ttl)
        return True
    if kind == "disruption":
        status.disruptions += 1
        status.retry_after = ""
        event(
            "Normal",
            names.EVENT_DISRUPTED,
            f"Worker {pod.name} ended by {what} at item {position + 1}; "
            "not counted against maxRestarts",
        )
        decision.outcome = Outcome("disrupted", pod.disruption or "Disruption")
        return False

    # A counted failure.
    if decision.outcome is None:
        decision.outcome = Outcome(
            "failed",
            pod.reason or (f"Exit{pod.exit_code}" if pod.exit_code is not None else "Unknown"),
        )
    # Poison items. A death counts against the item at the saved position only when
    # this attempt said it died there: it saved progress and then recorded an error
    # for that item, exited cleanly, or (in careful mode, after an unexplained
    # death) marked the item in flight. A worker that ends before it saves anything
    # (it crashed on start, or exited 0 without using the SDK) blames no item.
    wrote = cp.context.get("attempt") == cp.attempt
    precise = wrote and (
        (decision.outcome is not None and decision.outcome.kind == "not-finished")
        or (cp.last_error_index == position and bool(cp.last_error))
        or cp.inflight == position
    )
    stall = status.stall
    if stall is not None and stall.index == position:
        stall = Stall(index=position, attempts=stall.attempts + (1 if precise else 0))
    else:
        stall = Stall(index=position, attempts=1 if precise else 0)
    status.stall = stall
    if (
        stall.attempts
        and stall.attempts >= spec.retry.max_item_attempts
        and (total is None or position < total)
    ):
        error = (
            cp.last_error
            if cp.last_error_index == position and cp.last_error
            else f"worker died: {what}"
        )
        killed = f"Item {position + 1} killed {stall.attempts} attempt(s) in a row (last: {error})"
        if spec.retry.on_poison_item == "Fail":
            msg = f"{killed}; retry.onPoisonItem is Fail."
            _fail(status, decision, cond.REASON_POISON, msg, condition, event, stamp, ttl)
            return True
        if len(status.skipped) >= MAX_SKIPPED_RECORDED:
            msg = f"{killed}; {MAX_SKIPPED_RECORDED} items were skipped already, giving up."
            _fail(status, decision, cond.REASON_POISON, msg, condition, event, stamp, ttl)
            return True
        status.skipped.append(
            SkippedItem(index=position, attempts=stall.attempts, error=error[:MAX_ERROR_CHARS])
        )
        status.stall = None
        event(
            "Warning",
            names.EVENT_ITEM_SKIPPED,
            f"Item {position + 1} skipped after {stall.attempts} attempt(s) died there: {error}",
        )
    if status.restarts >= spec.retry.max_restarts:
        msg = (
            f"Attempt {cp.attempt} ended with {what} at item {position + 1}; "
            f"maxRestarts ({spec.retry.max_restarts}) exhausted."
        )
        _fail(status, decision, cond.REASON_MAX_RESTARTS, msg, condition, event, stamp, ttl)
        return True
    status.restarts += 1
    if not_finished is not None:
        told = decision.events[not_finished]
        decision.events[not_finished] = EventPlan(
            told.type, told.reason, told.message + "; resuming"
        )
    delay = spec.retry.backoff.delay(status.restarts)
    # Exact, not to the second: the announced delay is the delay.
    status.retry_after = format_precise_time(now + timedelta(seconds=delay)) if delay > 0 else ""
    if delay > 0:
        at = resume_index(status)
        condition(
            cond.PROGRESSING,
            "True",
            cond.REASON_BACKOFF,
            f"Attempt {cp.attempt} ended with {what}; "
            f"resuming at item {at + 1} in {seconds_text(delay)}.",
        )
        event(
            "Warning",
            names.EVENT_ATTEMPT_FAILED,
            f"Attempt {cp.attempt} ended with {what}; "
            f"restart {status.restarts}/{spec.retry.max_restarts} in {seconds_text(delay)}",
        )
    return False


def _check_total(
    batch: ResumableBatch, status: ResumableBatchStatus, condition: ConditionFn, event: EventFn
) -> None:
    """Say so, once, when the worker's item count is not spec.totalItems.

    A condition records it, so the Warning event is sent when the mismatch is first
    seen, not on every pass; the condition goes when the two agree again (the spec
    was corrected, or a rerun's worker has not counted yet).
    """
    declared = batch.spec.total_items
    reported = status.checkpoint.total_items
    seen = cond.find(status.conditions, cond.TOTAL_ITEMS_MISMATCH)
    if declared is None or reported is None or declared == reported:
        if seen is not None:
            status.conditions.remove(seen)
        return
    if seen is None:
        event(
            "Warning",
            cond.REASON_TOTAL_ITEMS_MISMATCH,
            f"spec.totalItems was {declared} but the worker has {reported} items; "
            f"progress and messages use the worker's {reported}",
        )
    condition(
        cond.TOTAL_ITEMS_MISMATCH,
        "True",
        cond.REASON_WORKER_COUNT,
        f"spec.totalItems is {declared} but the worker has {reported} items.",
    )


def _reopen_edited(
    batch: ResumableBatch,
    status: ResumableBatchStatus,
    failed_by: str,
    condition: ConditionFn,
    event: EventFn,
) -> bool:
    """Reopen a batch failed by an exit code or a poison item whose spec was edited.

    The failed attempt is judged again under the edited spec: a poison item is
    skipped now if ``onPoisonItem`` became ``Skip``, or tried again (up to a raised
    ``maxItemAttempts``, else once: the edit may have fixed the worker). The next
    attempt is the restart after that counted failure: it needs the restart
    budget and is counted. Returns True when the batch goes on.
    """
    retry = batch.spec.retry
    cp = status.checkpoint
    stall = status.stall
    if (
        failed_by == cond.REASON_POISON
        and stall is not None
        and stall.attempts >= retry.max_item_attempts
        and retry.on_poison_item == "Skip"
    ):
        if len(status.skipped) >= MAX_SKIPPED_RECORDED:
            msg = (
                f"The spec changed, but item {stall.index + 1} cannot be skipped: "
                f"{MAX_SKIPPED_RECORDED} items were skipped already."
            )
            condition(cond.FAILED, "True", cond.REASON_POISON, msg)
            condition(cond.PROGRESSING, "False", cond.REASON_POISON, msg)
            event("Warning", cond.REASON_POISON, msg.removesuffix("."))
            return False
        error = (
            cp.last_error
            if cp.last_error_index == stall.index and cp.last_error
            else f"worker died: {status.last_failure}"
        )
        status.skipped.append(
            SkippedItem(index=stall.index, attempts=stall.attempts, error=error[:MAX_ERROR_CHARS])
        )
        status.stall = None
        event(
            "Warning",
            names.EVENT_ITEM_SKIPPED,
            f"Item {stall.index + 1} skipped after {stall.attempts} attempt(s) died there: {error}",
        )
    at = resume_index(status)
    if status.restarts >= retry.max_restarts:
        msg = (
            f"The spec changed, but maxRestarts ({retry.max_restarts}) is exhausted: "
            f"raise spec.retry.maxRestarts to go on from item {at + 1}."
        )
        condition(cond.FAILED, "True", cond.REASON_MAX_RESTARTS, msg)
        condition(cond.SUCCEEDED, "False", cond.REASON_MAX_RESTARTS, names.MESSAGE_FAILED)
        condition(cond.PROGRESSING, "False", cond.REASON_MAX_RESTARTS, msg)
        event("Warning", cond.REASON_MAX_RESTARTS, msg.removesuffix("."))
        return False
    status.restarts += 1
    msg = (
        f"The spec changed since the batch failed ({failed_by}): going on from item "
        f"{at + 1}, restart {status.restarts}/{retry.max_restarts}."
    )
    condition(cond.FAILED, "False", cond.REASON_SPEC_CHANGED, msg)
    condition(cond.SUCCEEDED, "Unknown", cond.REASON_SPEC_CHANGED, names.MESSAGE_RETRYING)
    condition(cond.PROGRESSING, "Unknown", cond.REASON_SPEC_CHANGED, msg)
    event("Normal", cond.REASON_SPEC_CHANGED, msg.removesuffix("."))
    status.completion_time = ""
    status.retry_after = ""
    return True


def _fail(
    status: ResumableBatchStatus,
    decision: Decision,
    reason: str,
    msg: str,
    condition: ConditionFn,
    event: EventFn,
    stamp: str,
    ttl: int | None,
) -> None:
    status.completion_time = stamp
    status.retry_after = ""
    if ttl is not None:
        decision.requeue_after = float(ttl)  # then _finished() deletes the batch
    condition(cond.FAILED, "True", reason, msg)
    condition(cond.SUCCEEDED, "False", reason, names.MESSAGE_FAILED)
    condition(cond.PROGRESSING, "False", reason, msg)
    event("Warning", reason, msg)
    decision.outcome = decision.outcome or Outcome("failed", reason)


def _start_attempt(
    batch: ResumableBatch,
    status: ResumableBatchStatus,
    decision: Decision,
    now: datetime,
    progressing: Callable[[cond.Status, str, str], None],
    event: EventFn,
) -> None:
    total = total_items(batch, status)
    attempt = status.checkpoint.attempt + 1
    start = resume_index(status)
    name = pod_name(batch.metadata.name, attempt)
    status.checkpoint.attempt = attempt
    status.active_pod = name
    status.retry_after = ""
    decision.bump_attempt = True
    decision.create_pod = PodPlan(
        name=name,
        attempt=attempt,
        start_index=start,
        # What spec.totalItems says (RESUMABLE_TOTAL_ITEMS): a worker given another
        # list goes on saying so in its log.
        total_items=batch.spec.total_items if batch.spec.total_items is not None else total,
        careful=status.stall is not None,
    )
    of = total if total is not None else "?"
    fresh = start == 0 and not status.checkpoint.completed
    if attempt == 1 or fresh:
        # Attempt 1, a rerun, or a restart before anything was saved: say which.
        again = f" after {status.last_failure}" if status.last_failure and attempt > 1 else ""
        progressing("True", cond.REASON_POD_CREATED, f"Attempt {attempt} started at item 1/{of}.")
        event(
            "Normal",
            names.EVENT_STARTED,
            f"Started at item 1/{of}{again} (attempt {attempt}, pod {name})",
        )
    else:
        after = status.last_failure or "a restart"
        # Every item saved, but the worker died before it could say the batch ended.
        where = (
            f"to finish, all {of} items saved,"
            if total is not None and start >= total
            else f"at item {start + 1}/{of}"
        )
        msg = f"Resumed {where} after {after} (attempt {attempt})"
        progressing("True", cond.REASON_RESUMED, msg + ".")
        event("Normal", cond.REASON_RESUMED, msg)
        failed_at = parse_time(status.failed_at)
        if failed_at is not None:
            decision.resumed_after_seconds = max(0.0, (now - failed_at).total_seconds())
    status.progress = progress_text(len(IndexSet.parse(status.checkpoint.completed)), total)


def _finished(
    batch: ResumableBatch,
    status: ResumableBatchStatus,
    decision: Decision,
    live: list[PodView],
    now: datetime,
) -> Decision:
    """A batch that ended: stop leftovers, and delete it once its TTL passed."""
    for pod in live:
        if not pod.deleting and (pod.name, True) not in decision.delete_pods:
            decision.delete_pods.append((pod.name, True))
    status.active_pod = ""
    ttl = batch.spec.ttl_seconds_after_finished
    done_at = parse_time(status.completion_time)
    if ttl is not None and done_at is not None:
        remaining = (done_at + timedelta(seconds=ttl) - now).total_seconds()
        if remaining <= 0:
            decision.delete_batch = True
        else:
            decision.requeue_after = remaining
    return _finish_decision(batch.status, status, decision)


def _finish_decision(
    old: ResumableBatchStatus, status: ResumableBatchStatus, decision: Decision
) -> Decision:
    status.phase = derive_phase(status)
    # Every condition was judged against this generation of the spec, so each says
    # so (a lower observedGeneration would read as out of date).
    for c in status.conditions:
        c.observed_generation = status.observed_generation
    decision.status_changed = _dump(old) != _dump(status)
    return decision


def _dump(status: ResumableBatchStatus) -> dict[str, object]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def finished_pods_to_prune(pods: list[PodView], active: str) -> list[str]:
    """Terminated pods beyond the newest few, oldest first."""
    done = sorted(
        (p for p in pods if p.ended and p.name != active and not p.deleting),
        key=lambda p: p.attempt,
    )
    return [p.name for p in done[:-KEEP_FINISHED_PODS]] if len(done) > KEEP_FINISHED_PODS else []
