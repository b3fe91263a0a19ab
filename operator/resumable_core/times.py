"""Times as Kubernetes writes them (RFC 3339, UTC) and delays as people read them.

Used by the decision logic (:mod:`resumable_core.reconcile` and its policies), which
is given ``now`` and never reads a clock, and by the executors for event stamps.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_precise_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds (as a MicroTime): for deadlines that must not
    come early, such as ``retryAfter``; truncating to the second would cut up to a
    second off a backoff, and all of a sub-second one."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_text(seconds: float) -> str:
    """A delay as people read it: "4s", "0.25s", "1.5s" (to the microsecond, not rounded)."""
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def parse_time(text: str) -> datetime | None:
    """Parse an RFC 3339 time written by :func:`format_time` (or with fractions)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
