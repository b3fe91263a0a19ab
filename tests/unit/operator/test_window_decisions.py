"""decide() with spec.window: wait outside it, stop at its end, resume inside it; recurring runs.

As in test_reconcile.py, each test builds a batch, feeds the decided status back
(``settle``) and moves a fake clock: the decisions read ``now`` from their
arguments only, so every edge is exact. The window in most tests is 01:00 to
06:00 UTC each night.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_core import conditions as cond
from resumable_core import objects
from resumable_core.reconcile import Decision, PodView, decide
from tests.unit.operator.test_reconcile import make_batch, messages, running, saved, settle

NIGHTLY = {"schedule": "0 1 * * *", "duration": "5h"}
OPENS = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
CLOSES = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
NEXT_OPENS = OPENS + timedelta(days=1)


def windowed(**window: Any) -> ResumableBatch:
    return make_batch(window={**NIGHTLY, **window})


def reason(decision: Decision, type_: str) -> tuple[str, str]:
    found = cond.find(decision.status.conditions, type_)
    assert found is not None
    return found.status, found.reason


def message(decision: Decision, type_: str) -> str:
    found = cond.find(decision.status.conditions, type_)
    assert found is not None
    return found.message


def test_a_batch_created_outside_its_window_waits_and_says_until_when() -> None:
    batch = windowed()
    now = OPENS - timedelta(hours=3)
    d = settle(batch, decide(batch, [], now))
    assert d.create_pod is None
    assert d.status.phase == "Waiting"
    assert reason(d, cond.SUSPENDED) == ("True", cond.REASON_OUTSIDE_WINDOW)
    assert message(d, cond.SUSPENDED) == "Outside its window; it opens at 2026-12-04T01:00:00Z."
    assert d.status.window is not None
    assert d.status.window.opens_at == "2026-12-04T01:00:00Z"
    assert d.requeue_after == 3 * 3600  # woken at the opening, not a minute later
    assert "Outside its window: waiting at item 1/50; it opens at 2026-12-04T01:00:00Z" in (
        messages(d)
    )
    again = decide(batch, [], now + timedelta(minutes=5))
    assert again.status_changed is False
    assert again.events == []
    assert again.requeue_after == 3 * 3600 - 300


def test_a_batch_created_mid_window_starts_at_once_and_knows_when_it_stops() -> None:
    batch = windowed()
    d = settle(batch, decide(batch, [], OPENS + timedelta(hours=2)))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-1"
    assert d.status.window is not None
    assert d.status.window.closes_at == "2026-12-04T06:00:00Z"
    assert d.requeue_after == 3 * 3600


def test_the_window_closing_stops_the_worker_gracefully_not_as_a_failure() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    saved(batch, 20)
    d = settle(batch, decide(batch, [running()], CLOSES))
    assert d.delete_pods == [("b-1", True)]  # SIGTERM and its grace period to save
    assert d.status.phase == "Waiting"
    assert d.status.active_pod == ""
    assert d.outcome is None  # no attempt accounted: not a failure, not a disruption
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert (
        "Window closed: stopping the worker; the batch resumes at item 21/50 or later when "
        "it opens at 2026-12-05T01:00:00Z"
    ) in messages(d)
    # The worker saves on its way out and ends (143): still nothing counted.
    saved(batch, 23)
    ended = PodView("b-1", 1, "Failed", exit_code=143, reason="Error", deleting=True)
    d = settle(batch, decide(batch, [ended], CLOSES + timedelta(seconds=5)))
    assert d.create_pod is None
    assert d.outcome is None
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert message(d, cond.PROGRESSING) == "Waiting at item 24; it opens at 2026-12-05T01:00:00Z."
    # The next night: a new attempt from the checkpoint, announced as such.
    d = settle(batch, decide(batch, [ended], NEXT_OPENS))
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.start_index) == ("b-2", 23)
    assert reason(d, cond.SUSPENDED) == ("False", cond.REASON_WINDOW_OPEN)
    assert "Resumed at item 24/50 after the window closed (attempt 2)" in messages(d)
    assert d.status.restarts == 0


def test_stop_before_stops_the_worker_that_long_before_the_end() -> None:
    batch = windowed(stopBefore="10m")
    settle(batch, decide(batch, [], OPENS))
    d = decide(batch, [running()], CLOSES - timedelta(minutes=10, seconds=1))
    assert d.delete_pods == []
    assert d.requeue_after == 1.0
    d = decide(batch, [running()], CLOSES - timedelta(minutes=10))
    assert d.delete_pods == [("b-1", True)]
    assert d.status.window is not None
    assert d.status.window.opens_at == "2026-12-05T01:00:00Z"


def test_a_running_worker_is_looked_at_by_its_stop_time_not_a_minute_later() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    d = decide(batch, [running()], CLOSES - timedelta(seconds=20))
    assert d.requeue_after == 20.0  # not the 60 s resync


def test_an_operator_down_over_the_close_stops_the_worker_when_it_is_back() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    saved(batch, 10)
    # Nobody looked at 06:00; at 09:00 the worker still runs: the level says stop it.
    d = settle(batch, decide(batch, [running()], CLOSES + timedelta(hours=3)))
    assert d.delete_pods == [("b-1", True)]
    assert d.status.phase == "Waiting"


def test_an_operator_down_over_a_whole_night_lets_a_worker_inside_tonights_window_run() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    # Down from 02:00 until the next night's 02:00: the worker ran on (nobody stopped
    # it); it is inside a window now, so it goes on. The level, not the missed edges.
    d = decide(batch, [running()], NEXT_OPENS + timedelta(hours=1))
    assert d.delete_pods == []
    assert d.create_pod is None
    assert d.status.phase == "Running"


def test_an_operator_down_over_the_opening_starts_the_worker_when_it_is_back() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS - timedelta(hours=1)))
    d = decide(batch, [], OPENS + timedelta(hours=4))
    assert d.create_pod is not None
    assert d.requeue_after == 3600  # stop at 06:00


def test_a_manual_suspend_wins_over_an_open_window() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    batch.spec.suspend = True
    d = settle(batch, decide(batch, [running()], OPENS + timedelta(hours=1)))
    assert d.delete_pods == [("b-1", True)]
    assert d.status.phase == "Suspended"
    assert reason(d, cond.SUSPENDED) == ("True", cond.REASON_SUSPENDED)
    # Lifted outside the window: it waits for the window, it does not start.
    batch.spec.suspend = False
    d = settle(batch, decide(batch, [], CLOSES + timedelta(hours=1)))
    assert d.create_pod is None
    assert d.status.phase == "Waiting"


def test_the_window_gives_way_to_a_terminal_batch_and_then_needs_no_wake_up() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    done = PodView("b-1", 1, "Succeeded", exit_code=0, reason="Completed")
    d = settle(batch, decide(batch, [done], OPENS + timedelta(hours=1)))
    assert d.status.phase == "Succeeded"
    d = decide(batch, [done], CLOSES + timedelta(hours=1))
    assert d.status.window is None
    assert d.requeue_after is None


def test_a_window_in_a_zone_with_dst_wakes_the_operator_at_the_real_instant() -> None:
    batch = windowed(timeZone="Europe/Berlin")
    # Spring forward night: 01:00 CET (00:00 UTC) to 06:00 CEST (04:00 UTC).
    d = settle(batch, decide(batch, [], datetime(2026, 3, 29, 0, 0, tzinfo=UTC)))
    assert d.create_pod is not None
    assert d.requeue_after == 4 * 3600


# ------------------------------------------------------------------------ recurring


def recurring(policy: str = "Continue", **window: Any) -> ResumableBatch:
    return make_batch(
        runId="nightly",
        window={**NIGHTLY, "recurrence": {"concurrencyPolicy": policy, "historyLimit": 2}},
        **window,
    )


def finish(batch: ResumableBatch, attempt: int, now: datetime) -> Decision:
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    pod = PodView(batch.status.active_pod, attempt, "Succeeded", exit_code=0, reason="Completed")
    return settle(batch, decide(batch, [pod], now))


def test_a_recurring_batch_names_its_first_run_after_the_window_it_runs_in() -> None:
    batch = recurring()
    d = settle(batch, decide(batch, [], OPENS + timedelta(minutes=5)))
    assert d.status.run_id == "nightly-20261204-0100"
    assert d.create_pod is not None
    assert d.create_pod.name == "b-1"  # adopted at first sight: no rerun's attempt bump
    # The worker is told its run: its env and its pod's label (step results are per run).
    pod = objects.build_pod(batch, d.create_pod)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["RESUMABLE_RUN_ID"] == "nightly-20261204-0100"
    assert pod["metadata"]["labels"]["resumable.dev/run-id"] == "nightly-20261204-0100"


def test_a_recurring_batch_created_in_the_day_waits_for_the_next_window_under_its_name() -> None:
    batch = recurring()
    d = settle(batch, decide(batch, [], OPENS - timedelta(hours=5)))
    assert d.status.run_id == "nightly-20261204-0100"
    assert d.status.phase == "Waiting"


def test_a_finished_run_is_kept_until_the_next_window_starts_a_new_one() -> None:
    batch = recurring()
    settle(batch, decide(batch, [], OPENS))
    d = finish(batch, 1, OPENS + timedelta(hours=2))
    assert d.status.phase == "Succeeded"
    assert d.status.window is not None
    assert d.status.window.opens_at == "2026-12-05T01:00:00Z"
    assert d.requeue_after == 22 * 3600  # the next run's opening
    d = settle(batch, decide(batch, [], NEXT_OPENS))
    assert d.status.run_id == "nightly-20261205-0100"
    assert reason(d, cond.SUCCEEDED) == ("Unknown", cond.REASON_SCHEDULED_RUN)
    assert d.status.history[0].run_id == "nightly-20261204-0100"
    assert d.status.history[0].result == "Succeeded"
    assert d.status.history[0].progress == "50/50"
    assert (
        "Scheduled run 'nightly-20261205-0100' starts from item 1 "
        "(run 'nightly-20261204-0100': Succeeded)"
    ) in messages(d)
    d = settle(batch, decide(batch, [], NEXT_OPENS + timedelta(seconds=1)))
    assert d.create_pod is not None
    assert d.create_pod.start_index == 0


def unfinished_at_next_opening(policy: str) -> tuple[ResumableBatch, Decision]:
    """Last night's run got to item 21 before its window closed; tonight's opens."""
    batch = recurring(policy)
    settle(batch, decide(batch, [], OPENS))
    saved(batch, 20)
    settle(batch, decide(batch, [running()], CLOSES))
    gone = PodView("b-1", 1, "Failed", exit_code=143, deleting=True)
    return batch, settle(batch, decide(batch, [gone], NEXT_OPENS))


def test_continue_goes_on_with_the_unfinished_run_then_starts_tonights() -> None:
    batch, d = unfinished_at_next_opening("Continue")
    assert d.status.run_id == "nightly-20261204-0100"
    assert d.create_pod is not None
    assert d.create_pod.start_index == 20
    assert d.status.history == []
    # It finishes at 03:00, inside tonight's window: tonight's run starts then.
    finish(batch, 2, NEXT_OPENS + timedelta(hours=2))
    d = settle(batch, decide(batch, [], NEXT_OPENS + timedelta(hours=2, seconds=1)))
    assert d.status.run_id == "nightly-20261205-0100"
    assert [h.result for h in d.status.history] == ["Succeeded"]


def test_replace_ends_the_unfinished_run_and_starts_tonights_from_item_1() -> None:
    batch, d = unfinished_at_next_opening("Replace")
    assert d.status.run_id == "nightly-20261205-0100"
    assert d.status.history[0].result == "Replaced"
    assert d.status.history[0].progress == "20/50"
    d = settle(batch, decide(batch, [], NEXT_OPENS + timedelta(seconds=1)))
    assert d.create_pod is not None
    assert d.create_pod.start_index == 0


def test_skip_ends_the_unfinished_run_and_leaves_tonight_unused() -> None:
    batch, d = unfinished_at_next_opening("Skip")
    assert d.status.run_id == "nightly-20261206-0100"  # tomorrow night's run
    assert d.status.history[0].result == "Skipped"
    d = settle(batch, decide(batch, [], NEXT_OPENS + timedelta(hours=1)))
    assert d.create_pod is None
    assert d.status.phase == "Waiting"
    assert d.status.window is not None
    assert d.status.window.opens_at == "2026-12-06T01:00:00Z"
    d = settle(batch, decide(batch, [], NEXT_OPENS + timedelta(days=1)))
    assert d.create_pod is not None
    assert d.create_pod.start_index == 0


def test_the_history_keeps_only_the_last_runs() -> None:
    batch = recurring()
    settle(batch, decide(batch, [], OPENS))
    attempt = 1
    for night in range(4):
        opens = OPENS + timedelta(days=night)
        if night:
            settle(batch, decide(batch, [], opens))
            d = settle(batch, decide(batch, [], opens + timedelta(seconds=1)))
            assert d.create_pod is not None
            attempt = d.create_pod.attempt
        finish(batch, attempt, opens + timedelta(hours=1))
    assert [h.run_id for h in batch.status.history] == [
        "nightly-20261206-0100",
        "nightly-20261205-0100",
    ]  # historyLimit 2, newest first


def test_an_operator_down_for_nights_starts_one_run_for_the_window_it_comes_back_in() -> None:
    batch = recurring()
    settle(batch, decide(batch, [], OPENS))
    finish(batch, 1, OPENS + timedelta(hours=1))
    d = settle(batch, decide(batch, [], OPENS + timedelta(days=3, hours=2)))
    assert d.status.run_id == "nightly-20261207-0100"
    assert len(d.status.history) == 1


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("schedule", "0 25 * * *", "spec.window.schedule\n  Value error, hour '25': 25 is outside"),
        ("duration", "5x", "spec.window.duration\n  Value error, '5x' is not a duration"),
        ("timeZone", "Mars/Base", "spec.window.timeZone\n  Value error, 'Mars/Base' is not a"),
        ("stopBefore", "6h", "window.stopBefore (6h) must be shorter than window.duration (5h)"),
    ],
)
def test_a_bad_window_field_is_refused_naming_it(field: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        make_batch(window={**NIGHTLY, field: value})


def test_a_recurring_batch_cannot_have_a_ttl() -> None:
    with pytest.raises(ValueError, match="ttlSecondsAfterFinished cannot be set"):
        make_batch(
            ttlSecondsAfterFinished=60,
            window={**NIGHTLY, "recurrence": {}},
        )


def test_a_worker_that_finishes_as_the_window_closes_ends_the_batch_not_a_new_run() -> None:
    batch = windowed()
    settle(batch, decide(batch, [], OPENS))
    settle(batch, decide(batch, [running()], CLOSES))  # told to stop at 06:00
    # On its way out it saves its last items: every item done.
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    done = PodView("b-1", 1, "Succeeded", exit_code=0, reason="Completed", deleting=True)
    d = settle(batch, decide(batch, [done], CLOSES + timedelta(seconds=3)))
    assert d.status.phase == "Succeeded"
    d = decide(batch, [done], NEXT_OPENS)
    assert d.create_pod is None  # not a new attempt from item 1 the next night


def test_a_worker_that_finishes_as_it_is_suspended_ends_the_batch_too() -> None:
    batch = make_batch()
    settle(batch, decide(batch, [], OPENS))
    batch.spec.suspend = True
    settle(batch, decide(batch, [running()], OPENS + timedelta(minutes=1)))
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    done = PodView("b-1", 1, "Succeeded", exit_code=0, reason="Completed", deleting=True)
    d = settle(batch, decide(batch, [done], OPENS + timedelta(minutes=2)))
    assert d.status.phase == "Succeeded"


def test_the_window_closing_stops_every_parallel_worker_as_a_suspend_does() -> None:
    batch = make_batch(window=NIGHTLY, parallelism=2)
    made = []
    for second in range(2):
        d = settle(batch, decide(batch, [PodView(n, 1, "Running") for n in made], OPENS))
        assert d.create_pod is not None, second
        made.append(d.create_pod.name)
    d = settle(batch, decide(batch, [PodView(n, 1, "Running") for n in made], CLOSES))
    assert sorted(d.delete_pods) == sorted((n, True) for n in made)
    assert d.status.phase == "Waiting"
    assert d.outcome is None
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
