"""spec.window: outside its window the batch waits, stopped as spec.suspend stops it.

Called by :func:`resumable_core.reconcile.decide` right after the spec.suspend
rule (a manual suspend wins): outside the window (or in its last stopBefore)
the worker is told to stop (a graceful delete: SIGTERM, and its grace period to
save), no new one starts, and the batch is Waiting: Suspended True with reason
OutsideWindow, a message saying when the window opens. Not a failure, not a
restart, not a disruption: the attempt is dropped the way a suspend drops it,
and the next opening starts a new attempt at the checkpoint. Level-based: the
answer depends on ``now`` alone (:mod:`resumable_core.windows`), so an operator
that was down over an edge acts on where the batch stands when it comes back.
:func:`record` runs after every rule: it keeps status.window up to date and asks
to be woken at the next edge.
"""

from __future__ import annotations

from datetime import datetime

from resumable import constants as names
from resumable.v1alpha1 import Condition, WindowStatus
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.policy import pods, recurring, terminal
from resumable_core.progress import resume_index
from resumable_core.times import format_time
from resumable_core.windows import WindowState, next_opening, window_state

#: Never look again sooner than this for an edge (an edge just passed is judged now).
MIN_WAKE_SECONDS = 0.05
#: What status.lastFailure says after a window closed, for the next Resumed event.
WINDOW_CLOSED = "the window closed"


def _state(ctx: SyncContext) -> WindowState | None:
    window = ctx.spec.window
    return window_state(window, ctx.now) if window is not None else None


def opens_at(ctx: SyncContext) -> datetime | None:
    """When the worker may run next: the window's opening, or a skipped-to run's."""
    state = _state(ctx)
    if state is None:
        return None
    run_opens = recurring.run_opens_at(ctx)
    if run_opens is not None and run_opens > ctx.now:
        return run_opens  # a run for a later window (concurrencyPolicy Skip)
    return None if state.open else state.opens_at


def outside_window(ctx: SyncContext) -> bool:
    """True when spec.window keeps the worker from running now."""
    state = _state(ctx)
    if state is None:
        return False
    run_opens = recurring.run_opens_at(ctx)
    return not state.open or (run_opens is not None and run_opens > ctx.now)


def wait_for_window(ctx: SyncContext) -> None:
    """Stop the active worker gracefully, start none, set Waiting and say until when."""
    status = ctx.status
    pods.stop_active_worker(ctx)
    when = opens_at(ctx)
    until = f"it opens at {format_time(when)}" if when is not None else "no window is to come"
    ctx.set_condition(
        cond.SUSPENDED, "True", cond.REASON_OUTSIDE_WINDOW, f"Outside its window; {until}."
    )
    at = resume_index(status)
    ctx.set_condition(
        cond.PROGRESSING, "False", cond.REASON_OUTSIDE_WINDOW, f"Waiting at item {at + 1}; {until}."
    )
    total = ctx.total
    of_total = f"{at + 1}/{total if total is not None else '?'}"
    if ctx.old.active_pod or any(w.started for w in ctx.old.workers):
        # Sent as the worker is told to stop, before its exit flush (as for a suspend).
        ctx.event(
            "Normal",
            names.EVENT_WINDOW_CLOSED,
            f"Window closed: stopping the worker; the batch resumes at item {of_total} or "
            f"later when {until}",
        )
    elif not _waiting(ctx.old.conditions):
        ctx.event(
            "Normal",
            names.EVENT_WAITING,
            f"Outside its window: waiting at item {of_total}; {until}",
        )


def _waiting(conditions: list[Condition]) -> bool:
    found = cond.find(conditions, cond.SUSPENDED)
    return (
        found is not None and found.status == "True" and found.reason == cond.REASON_OUTSIDE_WINDOW
    )


def note_open(ctx: SyncContext) -> None:
    """Inside the window again: Suspended goes False, and the next attempt's Resumed
    event says the window had closed."""
    if _waiting(ctx.status.conditions):
        state = _state(ctx)
        closes = state.closes_at if state is not None else None
        until = f"the worker stops at {format_time(closes)}" if closes is not None else "open"
        ctx.set_condition(
            cond.SUSPENDED, "False", cond.REASON_WINDOW_OPEN, f"Inside its window; {until}."
        )
        ctx.status.last_failure = WINDOW_CLOSED


def record(ctx: SyncContext) -> None:
    """status.window as it stands now, and a wake-up at the next edge.

    A batch that ended for good (not recurring) has no edge left to wait for.
    """
    state, window = _state(ctx), ctx.spec.window
    if state is None or window is None:
        ctx.status.window = None
        return
    if terminal.is_terminal(ctx):
        if recurring.recurrence(ctx) is None:
            ctx.status.window = None
            return
        upcoming = next_opening(window, ctx.now)  # when the next run starts
        when, closes = (upcoming.start if upcoming is not None else None), None
    else:
        when = opens_at(ctx)
        closes = state.closes_at if state.open and when is None else None
    ctx.status.window = WindowStatus(
        opens_at=format_time(when) if when is not None else "",
        closes_at=format_time(closes) if closes is not None else "",
    )
    edge = when if when is not None else closes
    if edge is not None:
        wake = max(MIN_WAKE_SECONDS, (edge - ctx.now).total_seconds())
        requeue = ctx.decision.requeue_after
        ctx.decision.requeue_after = wake if requeue is None else min(requeue, wake)
