"""Cron schedules as Kubernetes CronJob reads them: five fields, or a macro.

Parsed here, beside the API models (:mod:`resumable.v1alpha1` refuses a bad
``spec.window.schedule`` with it, in the manner of :mod:`resumable.ranges`), and
stepped through by the window arithmetic (:mod:`resumable_core.windows`). The
syntax is CronJob's (robfig/cron's standard parser): ``minute hour day-of-month
month day-of-week``, each ``*`` (or ``?`` in the day fields), a number, a range
``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, or a comma-separated list of them;
months ``JAN``-``DEC`` and weekdays ``SUN``-``SAT`` by name (any case); weekdays
0-6 with 0 for Sunday; and the macros ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``. As in cron, when both
day fields are restricted a day matches either; when one of them starts with
``*`` only the other one counts.

Pure and clock-free: a :class:`CronSchedule` steps through *wall-clock* times
(naive datetimes, minute precision); which instant a wall-clock time is in a
time zone is the caller's business.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["MACROS", "CronSchedule", "shape"]

#: The macros CronJob accepts, and the five fields each stands for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

#: (name, lowest, highest, names) of the five fields, in order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {name: i for i, name in enumerate(_WEEKDAYS)}),
)

#: How far the search for a matching time goes: every schedule that fires at all
#: fires within 8 years (February 29 skips 2100).
_HORIZON_YEARS = 9


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the values each field allows.

    ::

        nightly = CronSchedule.parse("30 1 * * MON-FRI")
        nightly.next_after(datetime(2026, 12, 4, 12, 0))  # 2026-12-07 01:30 (a Monday)
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    #: The day-of-month field starts with ``*`` or ``?`` (then only weekdays count).
    any_day: bool
    #: The day-of-week field starts with ``*`` or ``?`` (then only days count).
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse a schedule; ValueError names the field and the part that is wrong."""
        expr = " ".join(text.split())
        if not expr:
            raise ValueError("empty schedule: five fields or a macro such as @daily")
        if expr.upper().startswith(("TZ=", "CRON_TZ=")):
            raise ValueError("a time zone in the schedule is not supported: use timeZone")
        if expr.startswith("@"):
            if expr.lower() not in MACROS:
                raise ValueError(f"unknown macro {expr!r}: use one of {', '.join(sorted(MACROS))}")
            fields = MACROS[expr.lower()].split()
        else:
            fields = expr.split(" ")
            if len(fields) != 5:
                raise ValueError(
                    f"{len(fields)} fields in {expr!r}: five expected "
                    "(minute hour day-of-month month day-of-week), or a macro such as @daily"
                )
        parsed = [_field(spec, part) for spec, part in zip(_FIELDS, fields, strict=True)]
        schedule = cls(
            text=expr,
            minutes=parsed[0][0],
            hours=parsed[1][0],
            days=parsed[2][0],
            months=parsed[3][0],
            weekdays=parsed[4][0],
            any_day=parsed[2][1],
            any_weekday=parsed[4][1],
        )
        schedule._check_fires()
        return schedule

    def _check_fires(self) -> None:
        """Refuse a schedule no date can match (``0 0 30 2 *``: no February 30)."""
        if not self.any_weekday and not self.any_day:
            return  # either day field matching is enough, and every weekday comes
        if self.any_day:
            return
        longest = max(29 if m == 2 else calendar.monthrange(2001, m)[1] for m in self.months)
        if min(self.days) > longest:
            months = ",".join(_MONTHS[m - 1] for m in sorted(self.months))
            raise ValueError(f"{self.text!r} never fires: no day {min(self.days)} in {months}")

    def day_matches(self, day: datetime) -> bool:
        """True when the date is one the day fields allow (cron's OR of the two)."""
        weekday = (day.weekday() + 1) % 7  # cron: Sunday is 0
        in_days = day.day in self.days
        in_weekdays = weekday in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, moment: datetime) -> bool:
        """True when the wall-clock minute is one the schedule fires at."""
        return (
            moment.month in self.months
            and self.day_matches(moment)
            and moment.hour in self.hours
            and moment.minute in self.minutes
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first wall-clock minute after ``moment`` (naive) that the schedule fires at."""
        t = moment.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = t.year + _HORIZON_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif not self.day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                later = [m for m in self.minutes if m > t.minute]
                t = (
                    t.replace(minute=min(later))
                    if later
                    else t.replace(minute=0) + timedelta(hours=1)
                )
            else:
                return t
        raise ValueError(f"{self.text!r} does not fire within {_HORIZON_YEARS} years")

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last wall-clock minute at or before ``moment`` (naive) the schedule fires at."""
        t = moment.replace(second=0, microsecond=0, tzinfo=None)
        limit = t.year - _HORIZON_YEARS
        while t.year >= limit:
            if t.month not in self.months:
                t = datetime(t.year, t.month, 1) - timedelta(minutes=1)
            elif not self.day_matches(t):
                t = datetime(t.year, t.month, t.day) - timedelta(minutes=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) - timedelta(minutes=1)
            elif t.minute not in self.minutes:
                earlier = [m for m in self.minutes if m < t.minute]
                t = (
                    t.replace(minute=max(earlier))
                    if earlier
                    else t.replace(minute=0) - timedelta(minutes=1)
                )
            else:
                return t
        raise ValueError(f"{self.text!r} did not fire within {_HORIZON_YEARS} years")


#: Each field's numbers as a regular expression, by (lowest, highest).
_NUMBERS = {
    (0, 59): "[1-5]?[0-9]",
    (0, 23): "1?[0-9]|2[0-3]",
    (1, 31): "[1-9]|[12][0-9]|3[01]",
    (1, 12): "[1-9]|1[0-2]",
    (0, 6): "[0-6]",
}


def shape() -> str:
    """A regular expression (RE2 and Python alike) for a schedule this module accepts,
    value ranges included: the CRD's CEL rule, so the API server refuses what the
    parser would. Only a range that runs backwards or a date that never comes
    (``0 0 30 2 *``) passes it and is left to :meth:`CronSchedule.parse`."""
    fields = []
    for name, lo, hi, names in _FIELDS:
        number = f"0*(?:{_NUMBERS[lo, hi]})"
        value = f"(?:{number}|(?i:{'|'.join(names)}))" if names else number
        star = r"[*?]" if name in ("day of month", "day of week") else r"\*"
        item = f"(?:{star}|{value}(?:-{value})?)(?:/0*[1-9][0-9]*)?"
        fields.append(f"{item}(?:,{item})*")
    macros = "|".join(m[1:] for m in MACROS)
    return rf"^\s*(?:@(?i:{macros})|" + r"\s+".join(fields) + r")\s*$"


def _first_of_next_month(t: datetime) -> datetime:
    return datetime(t.year + 1, 1, 1) if t.month == 12 else datetime(t.year, t.month + 1, 1)


def _field(spec: tuple[str, int, int, dict[str, int]], text: str) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it starts with ``*`` (or ``?``)."""
    name, lo, hi, names = spec
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise ValueError(f"{name} {text!r}: an empty list item")
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name} {part!r}: the step must be a number above 0")
            step = int(step_text)
        if span in ("*", "?"):
            if span == "?" and name not in ("day of month", "day of week"):
                raise ValueError(f"{name} {part!r}: '?' is only for the day fields")
            first, last = lo, hi
            star = True
        else:
            low_text, dash, high_text = span.partition("-")
            first = _value(name, lo, hi, names, low_text, part)
            # "a/n" means from a to the field's end, every n.
            last = (
                _value(name, lo, hi, names, high_text, part) if dash else (hi if slash else first)
            )
            if last < first:
                raise ValueError(f"{name} {part!r}: the range runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values), star


def _value(name: str, lo: int, hi: int, names: dict[str, int], text: str, part: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{name} {part!r}: {text!r} is not a number{known}")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{name} {part!r}: {value} is outside {lo}-{hi}")
    return value
