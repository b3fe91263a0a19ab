"""Window arithmetic: given spec.window and ``now``, is the batch inside its window, and
when does that change?

Pure and clock-free (``now`` is always an argument): called by the window rule
(:mod:`resumable_core.policy.window`), the recurring-run rule
(:mod:`resumable_core.policy.recurring`), ``resumable describe`` and the local
runner, so the operator, the CLI and ``resumable run`` agree to the second.

A window opens at each wall-clock time the schedule fires at (read in
``timeZone``) and closes ``duration`` later *on the wall clock*: ``0 1 * * *``
for 5h is 01:00 to 06:00 every night, also on the nights the clocks change (that
night it is 4 or 6 real hours long). A wall-clock time becomes an instant by one
rule, for starts and ends alike:

* a time the clocks skip (spring forward, 02:30 in Europe/Berlin on the last
  Sunday of March) is the moment the clocks jump (03:00 CEST): a window due in
  the gap opens then, and one that starts and ends inside the gap does not open;
* a time the clocks show twice (fall back, 02:30 on the last Sunday of October)
  is its first occurrence (02:30 CEST): a window opens once, not twice.

Windows that overlap or touch count as one, and the worker stops ``stopBefore``
before the end of that one. The wall-clock mapping never goes backwards as the
wall clock goes forwards, so the latest window opened by ``now`` is the only one
``now`` can be inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from resumable.cron import CronSchedule
from resumable.v1alpha1 import Window

#: How far the wall clock can be from UTC-with-a-fixed-offset: the largest DST shift.
_SLACK = timedelta(hours=3)
#: Windows merged into one before it counts as never closing (``* * * * *`` for 1h).
_MAX_MERGED = 1000


@dataclass(frozen=True)
class Opening:
    """One window: when it opens and ends (instants, UTC), and its start on the wall clock."""

    start: datetime
    end: datetime
    wall: datetime

    def stamp(self) -> str:
        """The start as a run id part: local wall-clock ``YYYYMMDD-HHMM``."""
        return self.wall.strftime("%Y%m%d-%H%M")


@dataclass(frozen=True)
class WindowState:
    """Where ``now`` stands against a window.

    ``open`` means the worker may run: inside a window and before its end less
    stopBefore. While open, ``closes_at`` is when the worker is stopped (None:
    the windows overlap without end); while not, ``opens_at`` is when it may run
    again. ``current`` is the window ``now`` is in (None between windows), even
    in its last stopBefore.
    """

    open: bool
    closes_at: datetime | None
    current: Opening | None
    #: The latest window opened at or before ``now`` (None: none within the search).
    latest: Opening | None
    #: While not open: the window the worker may run in next (None: none to come).
    upcoming: Opening | None = None

    @property
    def opens_at(self) -> datetime | None:
        """While not open: when the worker may run again."""
        return self.upcoming.start if self.upcoming is not None else None

    @property
    def next_edge(self) -> datetime | None:
        """When the answer changes next: the stop while open, the opening while not."""
        return self.closes_at if self.open else self.opens_at


def instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) a wall-clock time in ``zone`` stands for (see the module's rule)."""
    before = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall_clock(before, zone) == wall:
        return before  # it exists (its first occurrence, if the clocks show it twice)
    # In a gap: read with the offset after the jump it is earlier than the jump, read
    # with the one before it is later; the jump is the first second in between whose
    # wall clock is past ``wall``.
    low = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(before.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if wall_clock(datetime.fromtimestamp(middle, UTC), zone) > wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def wall_clock(moment: datetime, zone: ZoneInfo) -> datetime:
    """The wall-clock time (naive) an instant shows in ``zone``."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _opening(window: Window, wall: datetime) -> Opening:
    zone = window.zone
    return Opening(instant(wall, zone), instant(wall + window.length, zone), wall)


def latest_opening(window: Window, now: datetime) -> Opening | None:
    """The last window that opened at or before ``now``."""
    schedule = CronSchedule.parse(window.schedule)
    wall = wall_clock(now, window.zone) + _SLACK
    try:
        for _ in range(_MAX_MERGED):
            wall = schedule.latest_at_or_before(wall)
            opening = _opening(window, wall)
            if opening.start <= now:
                return opening
            wall -= timedelta(minutes=1)
    except ValueError:
        return None  # it has not fired within the search's horizon
    return None


def next_opening(window: Window, after: datetime) -> Opening | None:
    """The first non-empty window that opens after ``after``."""
    schedule = CronSchedule.parse(window.schedule)
    wall = wall_clock(after, window.zone) - _SLACK
    try:
        for _ in range(_MAX_MERGED):
            wall = schedule.next_after(wall)
            opening = _opening(window, wall)
            if opening.start > after and opening.end > opening.start:
                return opening
    except ValueError:
        return None
    return None


def _merged_end(window: Window, first: Opening) -> datetime | None:
    """The end of the run of overlapping or touching windows ``first`` begins (None: no end)."""
    schedule = CronSchedule.parse(window.schedule)
    end, wall = first.end, first.wall
    for _ in range(_MAX_MERGED):
        wall = schedule.next_after(wall)
        following = _opening(window, wall)
        if following.start > end:
            return end
        end = max(end, following.end)
    return None


def window_state(window: Window, now: datetime) -> WindowState:
    """Where ``now`` stands against ``window``: open or not, and until when."""
    latest = latest_opening(window, now)
    current = latest if latest is not None and latest.end > now else None
    if current is not None:
        end = _merged_end(window, current)
        if end is None:
            return WindowState(True, None, current, latest)
        stop = end - window.margin
        if now < stop:
            return WindowState(True, stop, current, latest)
        after = end  # in the last stopBefore: the next window after this one
    else:
        after = now
    opening = next_opening(window, after)
    while opening is not None:
        end = _merged_end(window, opening)
        if end is None or end - window.margin > opening.start:
            return WindowState(False, None, current, latest, opening)
        opening = next_opening(window, opening.start)  # all of it inside stopBefore
    return WindowState(False, None, current, latest)
