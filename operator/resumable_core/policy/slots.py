"""Parallel workers (``spec.parallelism`` > 1): a worker per slot, each replaced alone.

Called by :func:`resumable_core.reconcile.decide` after the batch-level rules
(rerun, terminal, suspend) for a batch that runs parallel workers. Each slot of
``status.workers`` is a lineage of attempts with its own fencing token
(``attempt``), backoff and careful mode; its pod is ``<batch>-w<slot>-<attempt>``.
Workers claim chunks of items themselves (:mod:`resumable.claims`); this module
starts a slot's attempt, accounts for its end and decides when the batch is done:

* a slot's pod ended: its claim returns to the pool and its attempt is bumped in
  the same write, so a zombie of it can neither commit nor claim; how it ended
  goes through the same table as one worker's (:func:`.failures.classify`):
  a disruption is not counted, a failure counts against spec.retry.maxRestarts
  (a budget for the whole batch) and waits the slot's own backoff, a
  never-retry exit code fails the batch;
* a death at an item counts against it as for one worker (``status.stall``):
  the next attempts run careful (each item marked in flight), and an item that
  kills spec.retry.maxItemAttempts of them is a poison item;
* at most one pod is asked for per decision (the executors create one pod at a
  time); the next slot's follows at once;
* the batch succeeded once no item is left in the pool and no slot has a pod.
"""

from __future__ import annotations

from datetime import timedelta

from resumable import claims
from resumable import constants as names
from resumable.ranges import IndexSet
from resumable.v1alpha1 import WorkerSlot, worker_pod_name
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.decision import Outcome, PodPlan, PodView
from resumable_core.policy import failures, pods, terminal
from resumable_core.policy.attempts import RESYNC_SECONDS
from resumable_core.progress import progress_text, resume_index
from resumable_core.times import format_precise_time, parse_time, seconds_text

#: How soon the next decision follows one that asked for a slot's pod while
#: other slots wait for theirs.
NEXT_SLOT_SECONDS = 0.05


def is_parallel(ctx: SyncContext) -> bool:
    """True when the batch runs parallel workers (or a run that started so goes on)."""
    return ctx.spec.parallelism > 1 or bool(ctx.status.workers)


def pod_name(batch: str, slot: int, attempt: int) -> str:
    """The deterministic name of a slot's attempt's pod."""
    return worker_pod_name(batch, slot, attempt)


def sync_slots(ctx: SyncContext) -> None:
    """Watch every slot, start the ones that may start, and end the batch when done."""
    _size_slots(ctx)
    _forget_stall_once_done(ctx)
    for entry in ctx.status.workers:
        if _watch_slot(ctx, entry):
            pods.stop_live_pods(ctx)  # the batch ended: the other workers stop now
            return
    ctx.status.restarts = sum(e.restarts for e in ctx.status.workers)
    total = ctx.total
    if claims.pool_empty(ctx.status, total) and not any(
        e.started or e.claim for e in ctx.status.workers
    ):
        _succeed(ctx)
        return
    for entry in ctx.status.workers:
        _maybe_start(ctx, entry)
    ctx.status.progress = progress_text(claims.progress_count(ctx.status), total)
    if any(e.started for e in ctx.status.workers):
        _look_again(ctx, RESYNC_SECONDS)


def single_worker_stopping(ctx: SyncContext) -> bool:
    """spec.parallelism was raised while one worker runs: stop it gracefully (it saves
    on SIGTERM, and counts as neither restart nor failure); True while it ends."""
    status = ctx.status
    if not status.active_pod:
        return False
    pod = ctx.pod(status.active_pod)
    if pod is not None and not pod.ended:
        if not pod.deleting:
            ctx.delete_pod(pod.name, graceful=True)
            ctx.event(
                "Normal",
                names.EVENT_PARALLELISM_CHANGED,
                f"spec.parallelism is {ctx.spec.parallelism}: stopping worker {pod.name}; "
                "its saved items stay done and the workers share the rest",
            )
        _look_again(ctx, 1.0)
        return True
    status.active_pod = ""
    status.retry_after = ""
    return False


def stop_all(ctx: SyncContext) -> None:
    """spec.suspend (or a window closing): stop every worker gracefully; a slot whose
    pod ended gives its claim back, counting nothing."""
    for entry in ctx.status.workers:
        if not entry.started:
            continue
        pod = ctx.pod(entry.pod(ctx.batch.metadata.name))
        if pod is not None and not pod.ended:
            if not pod.deleting:
                ctx.delete_pod(pod.name, graceful=True)
            _look_again(ctx, 1.0)
            continue
        claims.release(ctx.status, entry.slot)
        entry.retry_after = ""


def reset_for_rerun(ctx: SyncContext) -> None:
    """A clean rerun: every slot starts over, its old attempt fenced out (a rerun with
    one worker drops the slots: a write to a slot that is gone is refused too)."""
    if ctx.spec.parallelism == 1:
        ctx.status.workers = []
        return
    ctx.status.workers = [
        WorkerSlot(slot=e.slot, attempt=e.attempt + 1) for e in ctx.status.workers
    ]


def live_slot_pods(ctx: SyncContext) -> set[str]:
    """The pods the slots' current attempts run in (not stale)."""
    name = ctx.batch.metadata.name
    return {e.pod(name) for e in ctx.status.workers if e.started}


# --------------------------------------------------------------------- the slots


def _size_slots(ctx: SyncContext) -> None:
    """As many slots as spec.parallelism; slots beyond it drain (stop gracefully, then go).

    A single worker's saved position becomes the pool's starting point: what it
    completed (and every item before its position) is done.
    """
    status, wanted = ctx.status, ctx.spec.parallelism
    if not status.workers:
        cp = status.checkpoint
        if not cp.finished and resume_index(status) > 0:
            done = IndexSet.parse(cp.completed)
            done.add_range(0, resume_index(status) - 1)
            skipped = IndexSet(s.index for s in status.skipped)
            cp.completed = str(done.difference(skipped))
    have = len(status.workers)
    if have < wanted:
        status.workers.extend(WorkerSlot(slot=i) for i in range(have, wanted))
    for entry in status.workers[wanted:]:
        pod = ctx.pod(entry.pod(ctx.batch.metadata.name)) if entry.started else None
        if pod is not None and not pod.ended:
            if not pod.deleting:
                ctx.delete_pod(pod.name, graceful=True)
            _look_again(ctx, 1.0)
        elif entry.started:
            claims.release(status, entry.slot)  # stopped, not failed: nothing counted
    while len(status.workers) > wanted and _removable(status.workers[-1]):
        status.workers.pop()


def _removable(entry: WorkerSlot) -> bool:
    """A drained slot can go once its pod ended and no work of it waits to be folded
    (the next claim of another slot does not fold it: it stays until the batch ends)."""
    return not entry.started and not (entry.done or entry.tokens or entry.cost_usd)


def _forget_stall_once_done(ctx: SyncContext) -> None:
    stall = ctx.status.stall
    if stall is not None and stall.index in claims.done_items(ctx.status):
        ctx.status.stall = None


def _watch_slot(ctx: SyncContext, entry: WorkerSlot) -> bool:
    """Follow the slot's attempt; True when the batch ended because of it."""
    if not entry.started:
        return False
    name = entry.pod(ctx.batch.metadata.name)
    pod = ctx.pod(name)
    create = ctx.create
    if pod is None and create is not None and create.pod == name:
        if create.result == "created":
            _look_again(ctx, 1.0)
            return False
        if create.result == "retrying":
            ctx.set_condition(
                cond.PROGRESSING,
                "True",
                cond.REASON_POD_CREATE_RETRYING,
                f"Cannot create pod {name} yet: {create.message}",
            )
            _look_again(ctx, create.retry_in if create.retry_in is not None else 1.0)
            return False
        if create.result == "refused":
            claims.release(ctx.status, entry.slot)
            msg = f"Pod {create.pod} was refused: {create.message}"
            terminal.fail(ctx, cond.REASON_POD_CREATE_FAILED, msg)
            return True
        # taken: another object's pod holds the name; the slot's next attempt gets
        # the next name, and nothing is counted.
        claims.release(ctx.status, entry.slot)
        return False
    if pod is not None and pod.stuck_deleting(ctx.now):
        ctx.delete_pod(pod.name, graceful=False)
        pod = pod.lost()
    if pod is not None and not pod.ended:
        _look_again(ctx, 1.0 if pod.deleting else RESYNC_SECONDS)
        return False
    if pod is None:
        pod = PodView(
            name=name,
            attempt=entry.attempt,
            phase="Failed",
            disruption=names.DISRUPTION_POD_DELETED,
            slot=entry.slot,
        )
    return _account_for_end(ctx, entry, pod)


def _account_for_end(ctx: SyncContext, entry: WorkerSlot, pod: PodView) -> bool:
    """How the slot's attempt ended, and what follows; True when the batch ended."""
    retry = ctx.spec.retry
    kind, what, _counted = failures.classify(pod, retry.never_retry_exit_codes)
    position = claims.position(entry)
    # Placed exactly: the item it marked in flight (careful mode), or the one item of
    # its chunk it had not reported done.
    exact = entry.inflight if entry.inflight is not None else claims.sole_unfinished(entry)
    attempt = entry.attempt
    claims.release(ctx.status, entry.slot)
    if kind == "success" and entry.idle:
        return False  # the pool had nothing left for it: this worker is done
    # How it ended is kept for the batch only (its latest failure), not per slot:
    # 64 slots' failure texts and times would not fit a small status.
    ctx.status.failed_at = ctx.stamp
    ctx.status.last_failure = _failure_text(
        entry.slot, what if kind != "success" else "exit 0 with items left"
    )
    if kind == "never-retry":
        ctx.decision.outcome = Outcome("failed", cond.REASON_NEVER_RETRY)
        msg = (
            f"Worker {entry.slot} (attempt {attempt}) ended with {what}, listed in "
            "retry.neverRetryExitCodes; not retried."
        )
        terminal.fail(ctx, cond.REASON_NEVER_RETRY, msg)
        return True
    if kind == "disruption":
        ctx.status.disruptions += 1
        entry.retry_after = ""
        ctx.decision.outcome = Outcome("disrupted", pod.disruption or names.DISRUPTION_UNNAMED)
        ctx.event(
            "Normal",
            names.EVENT_DISRUPTED,
            f"Worker {entry.slot} ({pod.name}) ended by {what}; its chunk goes back to the "
            "pool; not counted against maxRestarts",
        )
        return False
    reason = pod.reason or (f"Exit{pod.exit_code}" if pod.exit_code is not None else "Unknown")
    ctx.decision.outcome = Outcome(
        "not-finished" if kind == "success" else "failed",
        cond.REASON_NOT_FINISHED if kind == "success" else reason,
    )
    if position is not None and _poison_ends_batch(ctx, position, exact, what):
        return True
    if sum(e.restarts for e in ctx.status.workers) >= retry.max_restarts:
        where = f" at item {position + 1}" if position is not None else ""
        msg = (
            f"Worker {entry.slot} (attempt {attempt}) ended with {what}{where}; "
            f"maxRestarts ({retry.max_restarts}) exhausted."
        )
        terminal.fail(ctx, cond.REASON_MAX_RESTARTS, msg)
        return True
    entry.restarts += 1
    delay = retry.backoff.delay(entry.restarts)
    entry.retry_after = format_precise_time(ctx.now + timedelta(seconds=delay)) if delay > 0 else ""
    total_restarts = sum(e.restarts for e in ctx.status.workers)
    ctx.event(
        "Warning",
        names.EVENT_ATTEMPT_FAILED,
        f"Worker {entry.slot} (attempt {attempt}) ended with {what}; its chunk goes back to "
        f"the pool; restart {total_restarts}/{retry.max_restarts} in {seconds_text(delay)}",
    )
    return False


def _poison_ends_batch(ctx: SyncContext, position: int, exact: int | None, what: str) -> bool:
    """Count the death against the item it happened at; True when that fails the batch.

    Only a death placed exactly counts; any counted failure sets ``status.stall``,
    which makes every next attempt careful (each item marked in flight).
    """
    stall = failures.count_death(ctx, position, precise=exact == position)
    if not failures.is_poison(ctx, stall):
        return False
    return failures.poison_fails_batch(ctx, stall, f"worker died: {what}")


def _maybe_start(ctx: SyncContext, entry: WorkerSlot) -> None:
    """Start the slot's next attempt if it may: no pod, work left, backoff over."""
    if entry.started or entry.slot >= ctx.spec.parallelism:
        return
    total = ctx.total
    if entry.idle and claims.pool_empty(ctx.status, total):
        return
    retry_at = parse_time(entry.retry_after)
    if retry_at is not None and retry_at > ctx.now:
        _look_again(ctx, max(0.05, (retry_at - ctx.now).total_seconds()))
        return
    if any(
        p.slot == entry.slot and not p.ended and not p.stuck_deleting(ctx.now) for p in ctx.pods
    ):
        _look_again(ctx, 1.0)  # never two live pods for one slot
        return
    if ctx.decision.create_pod is not None or ctx.create is not None:
        # One pod at a time: the executor creates the pod a decision asks for, and
        # a decision told how a create went (the follow-up of one, or a create
        # refused for now) asks for no other; the next slot's comes next pass.
        _look_again(ctx, NEXT_SLOT_SECONDS)
        return
    _start(ctx, entry)


def _start(ctx: SyncContext, entry: WorkerSlot) -> None:
    """Record the slot's next attempt (its fencing token and pod), ask for the pod."""
    entry.attempt += 1
    entry.started = True
    pod = entry.pod(ctx.batch.metadata.name)
    entry.retry_after = ""
    entry.idle = False
    declared = ctx.spec.total_items
    ctx.decision.bump_attempt = True
    ctx.decision.create_pod = PodPlan(
        name=pod,
        attempt=entry.attempt,
        start_index=0,
        total_items=declared if declared is not None else ctx.total,
        careful=ctx.status.stall is not None,
        slot=entry.slot,
        parallelism=ctx.spec.parallelism,
        chunk_size=ctx.spec.chunk_size,
        run_id=ctx.status.run_id,
    )
    of = ctx.total if ctx.total is not None else "?"
    done = claims.progress_count(ctx.status)
    last = _own_failure(ctx, entry.slot)
    again = f" after {last}" if last else ""
    verb = "Started" if entry.attempt == 1 else "Resumed"
    ctx.set_condition(
        cond.PROGRESSING,
        "True",
        cond.REASON_RESUMED if verb == "Resumed" else cond.REASON_POD_CREATED,
        f"{ctx.spec.parallelism} workers; {done}/{of} items done.",
    )
    ctx.event(
        "Normal",
        cond.REASON_RESUMED if verb == "Resumed" else names.EVENT_STARTED,
        f"{verb} worker {entry.slot}{again} (attempt {entry.attempt}, pod {pod}); "
        f"{done}/{of} items done",
        once_pod_exists=True,
    )
    failed_at = parse_time(ctx.status.failed_at)
    if failed_at is not None and last:
        ctx.decision.resumed_after_seconds = max(0.0, (ctx.now - failed_at).total_seconds())


def _failure_text(slot: int, what: str) -> str:
    return f"worker {slot}: {what}"


def _own_failure(ctx: SyncContext, slot: int) -> str:
    """How the slot's last attempt ended, while the batch's latest failure is its own
    ("" after another slot's, or none): what its Resumed event says it follows."""
    prefix = _failure_text(slot, "")
    last = ctx.status.last_failure
    return last[len(prefix) :] if last.startswith(prefix) else ""


def _succeed(ctx: SyncContext) -> None:
    """Every item is done or skipped and every worker ended: fold the slots, succeed."""
    status = ctx.status
    for entry in status.workers:
        claims.fold(status, entry)
        entry.claim = ""
    status.checkpoint.finished = True
    status.checkpoint.next_index = 0
    terminal.succeed(ctx)


def _look_again(ctx: SyncContext, seconds: float) -> None:
    current = ctx.decision.requeue_after
    ctx.decision.requeue_after = seconds if current is None else min(current, seconds)
