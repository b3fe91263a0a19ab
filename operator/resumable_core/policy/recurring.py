"""spec.window.recurrence: a new run each time the window opens, and the runs' history.

Called by :func:`resumable_core.reconcile.decide` right after first sight, where a
changed spec.runId starts a clean rerun (:mod:`.rerun`): a recurring batch's runs
are clean reruns too, each under a runId of its own, ``<spec.runId>-<YYYYMMDD-HHMM>``
(or only the stamp): the wall-clock time, in the window's zone, of the opening it
was started for. Which run the status should hold is a function of the status
and ``now`` alone (level-based: an operator that was down over an opening starts
the run it would have started, once, when it comes back):

* no scheduled run yet (a new batch): the run of the window it is in, or else of
  the next one;
* a window opened since the run's own, and the run ended (Succeeded or Failed):
  the next run, for the window open now or else the next one;
* ... and the run has not ended: ``concurrencyPolicy`` says. ``Continue`` keeps
  it (it goes on in this window; the next run starts once it ended); ``Replace``
  ends it and starts this window's run; ``Skip`` ends it and starts the run of
  the *next* window, which waits (this window stays unused).

The run that makes way is summarised in ``status.history`` (newest first, at
most ``historyLimit`` entries).
"""

from __future__ import annotations

import re
from datetime import datetime

from resumable.v1alpha1 import Recurrence, RunSummary, Window
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.policy import rerun, terminal
from resumable_core.progress import items_saved, progress_text
from resumable_core.windows import instant, next_opening, window_state

#: The stamp ending a scheduled run's id: the opening's local wall-clock time.
_STAMP = re.compile(r"(?:^|-)(\d{8}-\d{4})$")
_STAMP_FORMAT = "%Y%m%d-%H%M"
#: spec.runId is cut to this before "-<stamp>", so the id stays a 63-character label value.
_PREFIX_CHARS = 63 - len("-20261204-0100")


def recurrence(ctx: SyncContext) -> tuple[Window, Recurrence] | None:
    """The window and its recurrence, when the batch starts a run at each opening."""
    window = ctx.spec.window
    if window is None or window.recurrence is None:
        return None
    return window, window.recurrence


def run_id_for(prefix: str, stamp: str) -> str:
    """The runId of the run started for the opening of that stamp, under spec.runId ``prefix``."""
    cut = prefix[:_PREFIX_CHARS].rstrip("-_.")
    return f"{cut}-{stamp}" if cut else stamp


def run_stamp(run_id: str) -> str | None:
    """The opening a scheduled run's id names (``YYYYMMDD-HHMM``), or None."""
    match = _STAMP.search(run_id)
    if match is None:
        return None
    try:
        datetime.strptime(match.group(1), _STAMP_FORMAT)
    except ValueError:
        return None  # digits that are no time: not a scheduled run's id
    return match.group(1)


def run_opens_at(ctx: SyncContext) -> datetime | None:
    """When the window of the status's scheduled run opens (None: not a scheduled run)."""
    found = recurrence(ctx)
    stamp = run_stamp(ctx.status.run_id)
    if found is None or stamp is None:
        return None
    return instant(datetime.strptime(stamp, _STAMP_FORMAT), found[0].zone)


def wanted_run_id(ctx: SyncContext) -> str:
    """The run the status should belong to now (see the module's rules)."""
    found = recurrence(ctx)
    assert found is not None, "only for a recurring batch"
    window, policy = found
    state = window_state(window, ctx.now)
    current = run_stamp(ctx.status.run_id)
    fresh = state.current if state.open else state.upcoming
    if current is not None:
        due = state.latest
        ended = terminal.is_terminal(ctx)
        if (
            due is None
            or due.stamp() <= current
            or (not ended and policy.concurrency_policy == "Continue")
        ):
            return run_id_for(ctx.spec.run_id, current)  # a new spec.runId reruns it
        if not ended and policy.concurrency_policy == "Skip":
            fresh = next_opening(window, state.current.end if state.current else ctx.now)
    if fresh is None:
        return ctx.status.run_id  # no window to come: nothing new to start
    return run_id_for(ctx.spec.run_id, fresh.stamp())


def new_run_due(ctx: SyncContext) -> bool:
    """True when the status should hold another run than it does."""
    return wanted_run_id(ctx) != ctx.status.run_id


def start_scheduled_run(ctx: SyncContext) -> None:
    """Summarise the run making way in status.history, then start the wanted run."""
    found = recurrence(ctx)
    assert found is not None
    run_id, previous = wanted_run_id(ctx), ctx.status.run_id
    if run_stamp(previous) is None and ctx.status.checkpoint.attempt == 0:
        ctx.status.run_id = run_id  # first sight: nothing ran, nothing to reset
        return
    ended = ""
    if run_stamp(previous) is not None:
        ended = f" (run {previous!r}: {_record(ctx, found[1], run_id)})"
    rerun.start_clean_rerun(
        ctx,
        run_id,
        reason=cond.REASON_SCHEDULED_RUN,
        message=f"Run {run_id!r} scheduled: starting from item 1.",
        event=f"Scheduled run {run_id!r} starts from item 1{ended}",
    )


def _record(ctx: SyncContext, policy: Recurrence, run_id: str) -> str:
    """Put the status's run in the history; returns how it ended."""
    status = ctx.status
    c = status.conditions
    if cond.is_true(c, cond.SUCCEEDED):
        result = "Succeeded"
    elif cond.is_true(c, cond.FAILED):
        result = "Failed"
    elif policy.concurrency_policy == "Skip" and run_stamp(run_id) != run_stamp(status.run_id):
        result = "Skipped"
    else:
        result = "Replaced"
    summary = RunSummary(
        run_id=status.run_id,
        result=result,
        progress=progress_text(items_saved(status), ctx.total),
        restarts=status.restarts,
        disruptions=status.disruptions,
        skipped_items=len(status.skipped),
        ended_at=status.completion_time or ctx.stamp,
    )
    status.history = [summary, *status.history][: policy.history_limit]
    return result
