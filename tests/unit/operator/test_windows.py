"""resumable_core.windows: is ``now`` inside spec.window, and when does that change?

Fixed instants only (the arithmetic is given ``now``): time zones east and west
of UTC, both daylight-saving transitions, windows over midnight, stopBefore,
windows that overlap, and the instant a wall-clock time stands for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from resumable.v1alpha1 import Window
from resumable_core.windows import instant, window_state

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(schedule: str = "0 1 * * *", duration: str = "5h", **kw: Any) -> Window:
    return Window(schedule=schedule, duration=duration, **kw)


@pytest.mark.parametrize(
    ("zone", "now", "is_open", "edge"),
    [
        # 01:00-06:00 local. UTC: the wall clock is UTC.
        ("UTC", "2026-12-04T00:59:59", False, "2026-12-04T01:00:00"),
        ("UTC", "2026-12-04T01:00:00", True, "2026-12-04T06:00:00"),
        ("UTC", "2026-12-04T05:59:59", True, "2026-12-04T06:00:00"),
        ("UTC", "2026-12-04T06:00:00", False, "2026-12-05T01:00:00"),
        # Berlin in winter is UTC+1: 01:00-06:00 CET is 00:00-05:00 UTC.
        ("Europe/Berlin", "2026-12-03T23:59:00", False, "2026-12-04T00:00:00"),
        ("Europe/Berlin", "2026-12-04T04:00:00", True, "2026-12-04T05:00:00"),
        # New York in winter is UTC-5: 01:00-06:00 EST is 06:00-11:00 UTC.
        ("America/New_York", "2026-12-04T05:00:00", False, "2026-12-04T06:00:00"),
        ("America/New_York", "2026-12-04T10:30:00", True, "2026-12-04T11:00:00"),
        # Kolkata is UTC+5:30: 01:00 IST on the 5th is 19:30 UTC on the 4th.
        ("Asia/Kolkata", "2026-12-04T19:29:00", False, "2026-12-04T19:30:00"),
        ("Asia/Kolkata", "2026-12-04T19:30:00", True, "2026-12-05T00:30:00"),
    ],
)
def test_the_window_is_read_on_the_wall_clock_of_its_time_zone(
    zone: str, now: str, is_open: bool, edge: str
) -> None:
    state = window_state(window(time_zone=zone), utc(now))
    assert state.open is is_open
    assert state.next_edge == utc(edge)


def test_a_window_over_midnight_is_open_on_both_sides_of_it() -> None:
    night = window("0 22 * * *", "8h")  # 22:00 to 06:00
    for now in ("2026-12-04T22:00:00", "2026-12-04T23:59:59", "2026-12-05T00:00:00"):
        state = window_state(night, utc(now))
        assert (state.open, state.closes_at) == (True, utc("2026-12-05T06:00:00")), now
    state = window_state(night, utc("2026-12-05T06:00:00"))
    assert not state.open
    assert state.opens_at == utc("2026-12-05T22:00:00")


def test_a_weekend_window_opened_on_friday_is_open_on_sunday() -> None:
    weekend = window("0 20 * * FRI", "60h")  # Friday 20:00 to Monday 08:00
    state = window_state(weekend, utc("2026-12-06T12:00:00"))  # Sunday
    assert state.open
    assert state.closes_at == utc("2026-12-07T08:00:00")
    state = window_state(weekend, utc("2026-12-08T12:00:00"))  # Tuesday
    assert not state.open
    assert state.opens_at == utc("2026-12-11T20:00:00")


def test_stop_before_ends_the_run_that_long_before_the_window() -> None:
    margin = window(stop_before="10m")
    state = window_state(margin, utc("2026-12-04T05:49:59"))
    assert state.open
    assert state.closes_at == utc("2026-12-04T05:50:00")
    state = window_state(margin, utc("2026-12-04T05:50:00"))
    assert not state.open
    assert state.current is not None  # still inside the window, in its last 10 minutes
    assert state.opens_at == utc("2026-12-05T01:00:00")


def test_windows_that_overlap_are_one_and_stop_before_counts_from_the_last_end() -> None:
    hourly = window("0 * * * *", "90m", stop_before="5m")  # each opens before the last closes
    state = window_state(hourly, utc("2026-12-04T10:20:00"))
    assert state.open
    assert state.closes_at is None  # back to back without end


def test_windows_that_merge_then_stop() -> None:
    twice = window("0 1,3 * * *", "3h", stop_before="15m")  # 01-04 and 03-06: one, 01-06
    state = window_state(twice, utc("2026-12-04T02:00:00"))
    assert state.open
    assert state.closes_at == utc("2026-12-04T05:45:00")


# ------------------------------------------------------------------------------ DST
# Europe/Berlin: on 2026-03-29 at 02:00 CET the clocks jump to 03:00 CEST (01:00 UTC);
# on 2026-10-25 at 03:00 CEST they go back to 02:00 CET (01:00 UTC).


def test_a_wall_clock_time_the_clocks_skip_is_the_moment_they_jump() -> None:
    assert instant(datetime(2026, 3, 29, 2, 0), BERLIN) == utc("2026-03-29T01:00:00")
    assert instant(datetime(2026, 3, 29, 2, 30), BERLIN) == utc("2026-03-29T01:00:00")
    assert instant(datetime(2026, 3, 29, 1, 59), BERLIN) == utc("2026-03-29T00:59:00")
    assert instant(datetime(2026, 3, 29, 3, 0), BERLIN) == utc("2026-03-29T01:00:00")


def test_a_wall_clock_time_the_clocks_show_twice_is_its_first_occurrence() -> None:
    assert instant(datetime(2026, 10, 25, 2, 30), BERLIN) == utc("2026-10-25T00:30:00")  # CEST
    assert instant(datetime(2026, 10, 25, 3, 0), BERLIN) == utc("2026-10-25T02:00:00")  # CET


def test_spring_forward_keeps_the_wall_clock_end_so_the_night_is_an_hour_shorter() -> None:
    nightly = window(time_zone="Europe/Berlin")  # 01:00 to 06:00 local
    state = window_state(nightly, utc("2026-03-29T00:00:00"))  # 01:00 CET
    assert state.open
    assert state.closes_at == utc("2026-03-29T04:00:00")  # 06:00 CEST: 4 real hours


def test_fall_back_keeps_the_wall_clock_end_so_the_night_is_an_hour_longer() -> None:
    nightly = window(time_zone="Europe/Berlin")
    state = window_state(nightly, utc("2026-10-24T23:00:00"))  # 01:00 CEST
    assert state.open
    assert state.closes_at == utc("2026-10-25T05:00:00")  # 06:00 CET: 6 real hours


def test_a_start_the_clocks_skip_opens_when_they_jump() -> None:
    skipped = window("30 2 * * *", "1h", time_zone="Europe/Berlin")  # 02:30 does not exist
    state = window_state(skipped, utc("2026-03-29T00:00:00"))
    assert not state.open
    assert state.opens_at == utc("2026-03-29T01:00:00")
    state = window_state(skipped, utc("2026-03-29T01:00:00"))
    assert state.open
    assert state.closes_at == utc("2026-03-29T01:30:00")


def test_a_window_wholly_inside_the_skipped_hour_does_not_open_that_night() -> None:
    lost = window("15 2 * * *", "30m", time_zone="Europe/Berlin")  # 02:15-02:45: skipped
    state = window_state(lost, utc("2026-03-28T12:00:00"))
    assert state.opens_at == utc("2026-03-30T00:15:00")  # the night after, 02:15 CEST


def test_a_start_the_clocks_show_twice_opens_once() -> None:
    repeated = window("30 2 * * *", "1h", time_zone="Europe/Berlin")
    state = window_state(repeated, utc("2026-10-25T00:30:00"))  # the first 02:30 (CEST)
    assert state.open
    assert state.closes_at == utc("2026-10-25T02:30:00")
    # The second 02:30 (CET, 01:30 UTC) is inside the same window, not a new one.
    again = window_state(repeated, utc("2026-10-25T01:30:00"))
    assert again.current == state.current
    after = window_state(repeated, utc("2026-10-25T02:30:00"))
    assert not after.open
    assert after.opens_at == utc("2026-10-26T01:30:00")


def test_an_hourly_window_in_the_repeated_hour_opens_once_per_wall_clock_hour() -> None:
    hourly = window("0 * * * *", "30m", time_zone="Europe/Berlin")
    state = window_state(hourly, utc("2026-10-25T00:40:00"))  # 02:40 CEST
    assert not state.open
    # The wall clock shows 02:00 again at 01:00 UTC: that start already was; next is 03:00 CET.
    assert state.opens_at == utc("2026-10-25T02:00:00")


def test_new_york_changes_on_other_days_than_berlin() -> None:
    nightly = window("0 1 * * *", "5h", time_zone="America/New_York")
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; 01:00 EST (06:00 UTC) to 06:00 EDT (10:00 UTC).
    state = window_state(nightly, utc("2026-03-08T06:00:00"))
    assert state.open
    assert state.closes_at == utc("2026-03-08T10:00:00")
