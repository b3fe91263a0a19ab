"""resumable.cron: CronJob's schedule syntax, parsed and stepped through on the wall clock."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from resumable.cron import MACROS, CronSchedule, shape

FRIDAY_NOON = datetime(2026, 12, 4, 12, 0)


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("30 1 * * MON-FRI", FRIDAY_NOON, datetime(2026, 12, 7, 1, 30)),  # over the weekend
        ("*/15 * * * *", datetime(2026, 12, 4, 12, 14, 59), datetime(2026, 12, 4, 12, 15)),
        ("0 22 * * 5", FRIDAY_NOON, datetime(2026, 12, 4, 22, 0)),
        ("0 0 1 jan,Jul *", FRIDAY_NOON, datetime(2027, 1, 1, 0, 0)),
        ("5/20 3 * * *", FRIDAY_NOON, datetime(2026, 12, 5, 3, 5)),  # a/n: from a, every n
        ("0 9-17/4 * * *", FRIDAY_NOON, datetime(2026, 12, 4, 13, 0)),
        ("0 0 29 2 *", FRIDAY_NOON, datetime(2028, 2, 29, 0, 0)),  # the next leap day
        ("0 0 31 * *", datetime(2026, 11, 1), datetime(2026, 12, 31, 0, 0)),  # not November
        ("0 12 * * *", FRIDAY_NOON, datetime(2026, 12, 5, 12, 0)),  # strictly after
        ("0 0 31 12 *", datetime(2026, 12, 31, 0, 0), datetime(2027, 12, 31, 0, 0)),
    ],
)
def test_next_after_finds_the_first_matching_minute(
    text: str, after: datetime, expected: datetime
) -> None:
    assert CronSchedule.parse(text).next_after(after) == expected


@pytest.mark.parametrize(
    ("text", "at", "expected"),
    [
        ("30 1 * * MON-FRI", datetime(2026, 12, 7, 1, 29), datetime(2026, 12, 4, 1, 30)),
        ("30 1 * * MON-FRI", datetime(2026, 12, 7, 1, 30), datetime(2026, 12, 7, 1, 30)),
        ("*/15 * * * *", datetime(2026, 12, 4, 12, 14, 59), datetime(2026, 12, 4, 12, 0)),
        ("0 0 29 2 *", FRIDAY_NOON, datetime(2024, 2, 29, 0, 0)),
        ("0 0 1 1 *", datetime(2026, 1, 1, 0, 0, 30), datetime(2026, 1, 1, 0, 0)),
    ],
)
def test_latest_at_or_before_finds_the_last_matching_minute(
    text: str, at: datetime, expected: datetime
) -> None:
    assert CronSchedule.parse(text).latest_at_or_before(at) == expected


def test_both_day_fields_restricted_match_either_as_cron_does() -> None:
    # The 13th, or any Friday: cron's OR when neither day field starts with '*'.
    schedule = CronSchedule.parse("0 0 13 * FRI")
    assert schedule.next_after(datetime(2026, 12, 1)) == datetime(2026, 12, 4)  # a Friday
    assert schedule.next_after(datetime(2026, 12, 11, 1)) == datetime(2026, 12, 13)  # a Sunday


def test_a_day_field_starting_with_a_star_leaves_only_the_other() -> None:
    # "*/2" restricts the days but starts with '*': only the weekday counts with it.
    schedule = CronSchedule.parse("0 0 */2 * MON")
    assert schedule.next_after(datetime(2026, 12, 4)) == datetime(2026, 12, 7)  # 7th: odd, Monday
    assert not schedule.matches(datetime(2026, 12, 8))  # a Tuesday


@pytest.mark.parametrize("macro", sorted(MACROS))
def test_macros_are_their_five_fields(macro: str) -> None:
    assert CronSchedule.parse(macro).next_after(FRIDAY_NOON) == CronSchedule.parse(
        MACROS[macro]
    ).next_after(FRIDAY_NOON)


def test_question_mark_stands_for_any_day() -> None:
    assert CronSchedule.parse("0 1 ? * *").next_after(FRIDAY_NOON) == datetime(2026, 12, 5, 1, 0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty schedule"),
        ("0 1 * *", "4 fields"),
        ("0 1 * * * *", "6 fields"),  # no seconds field, as in CronJob
        ("61 * * * *", "minute '61': 61 is outside 0-59"),
        ("0 24 * * *", "hour '24': 24 is outside 0-23"),
        ("0 0 0 * *", "day of month '0': 0 is outside 1-31"),
        ("0 0 * 13 *", "month '13': 13 is outside 1-12"),
        ("0 0 * * 7", "day of week '7': 7 is outside 0-6"),
        ("0 0 * * FUNDAY", "'FUNDAY' is not a number or a name (SUN, MON"),
        ("*/0 * * * *", "the step must be a number above 0"),
        ("5-3 * * * *", "the range runs backwards"),
        ("1,,2 * * * *", "an empty list item"),
        ("? * * * *", "'?' is only for the day fields"),
        ("@every 1h", "unknown macro '@every 1h'"),
        ("CRON_TZ=UTC 0 0 * * *", "use timeZone"),
        ("0 0 30 2 *", "never fires: no day 30 in FEB"),
        ("0 0 31 4,6 *", "never fires: no day 31 in APR,JUN"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_part(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        CronSchedule.parse(text)


def test_an_impossible_day_with_a_weekday_still_fires_on_the_weekday() -> None:
    # No February 30, but both day fields are restricted: any Monday in February matches.
    assert CronSchedule.parse("0 0 30 2 MON").next_after(FRIDAY_NOON) == datetime(2027, 2, 1)


@pytest.mark.parametrize(
    "text",
    [
        "0 1 * * *",
        "*/15 0-5,22-23 ? jan-MAR,dec mon-fri",
        "@daily",
        "5/20 3 * * *",
        " 0  1 * * * ",
        "00 01 * * 6",
        "59 23 31 12 SAT",
    ],
)
def test_the_crds_shape_takes_what_the_parser_takes(text: str) -> None:
    CronSchedule.parse(text)
    assert re.search(shape(), text)


@pytest.mark.parametrize(
    "text",
    [
        "0 25 * * *",
        "60 * * * *",
        "0 0 32 * *",
        "0 0 * 0 *",
        "0 0 * * 7",
        "*/0 * * * *",
        "? * * * *",
        "@every 1h",
        "0 1 * *",
        "1,,2 * * * *",
        "0 0 * * FUNDAY",
        "0 0 * * * *",
    ],
)
def test_the_crds_shape_refuses_what_the_parser_refuses_for_its_values(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is tested above
        CronSchedule.parse(text)
    assert re.search(shape(), text) is None
