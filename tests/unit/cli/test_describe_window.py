"""`resumable describe`'s window lines: the window, the time left in it or until it opens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resumable.v1alpha1 import ResumableBatch, RunSummary
from resumable_cli.describe import window_lines


def batch(**window: Any) -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "worker"}]}},
                "window": {"schedule": "0 1 * * *", "duration": "5h", **window},
            }
        }
    )


def test_inside_the_window_it_shows_when_the_worker_stops_and_the_time_left() -> None:
    lines = window_lines(
        batch(timeZone="Europe/Berlin", stopBefore="10m"), datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    )
    assert lines == [
        "Window:      0 1 * * * for 5h (Europe/Berlin), the worker stops 10m before its end",
        "  Now:       open; the worker stops at 2026-12-04T04:50:00Z (3h50m left)",
    ]


def test_outside_the_window_it_shows_when_it_opens_and_how_long_until_then() -> None:
    lines = window_lines(batch(), datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    assert lines[1] == "  Now:       closed; it opens at 2026-12-05T01:00:00Z (in 13h00m)"


def test_a_recurring_batch_shows_its_policy_and_last_runs() -> None:
    recurring = batch(recurrence={"concurrencyPolicy": "Replace"})
    recurring.status.history = [
        RunSummary(run_id="20261204-0100", result="Replaced", progress="20/50", restarts=1)
    ]
    lines = window_lines(recurring, datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    assert lines[2:] == [
        "  Runs:      a new run at each opening; concurrencyPolicy Replace",
        "History:",
        "  20261204-0100  Replaced  20/50  1 restart(s)",
    ]


def test_a_batch_without_a_window_shows_no_window_lines() -> None:
    plain = ResumableBatch.model_validate(
        {"spec": {"template": {"spec": {"containers": [{"name": "worker"}]}}}}
    )
    assert window_lines(plain, datetime(2026, 12, 4, tzinfo=UTC)) == []
