"""When to write a checkpoint: the coalescing rule of ``spec.checkpoint``, kept pure.

The run asks :meth:`Coalescer.due` at every item boundary; a write is due when
any trigger fires (items, seconds, cost) and the minimum interval has passed.
The final write at exit bypasses it. Pure so it is tested without clocks or disks.

While the store is away (a boundary write failed for want of the API server),
the triggers give way to a retry schedule: items go on, the next try is due
after a growing gap (:func:`next_try`), and once writes have failed for
:data:`UNSAVED_GRACE_SECONDS` the run takes no new item until one lands
(:meth:`Coalescer.must_wait`). The jitter is a number the caller draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from resumable.v1alpha1 import DEFAULT_EVERY_SECONDS, CheckpointPolicy

#: Seconds from a failed boundary write to the next try; doubles with each failure in a row.
RETRY_FIRST_SECONDS = 1.0
#: The longest gap between two tries (so a server that is back is seen within it).
RETRY_CAP_SECONDS = 8.0
#: Each gap is up to this share shorter, by the jitter drawn for it (workers spread out).
RETRY_JITTER = 0.5
#: The most of its time a worker spends in boundary writes that fail: a try that
#: waited ``t`` seconds (no answer) is followed by the next one ``t / WAIT_SHARE``
#: seconds after it began, not sooner.
WAIT_SHARE = 0.1
#: How long (seconds) the run goes on while its boundary writes fail: at the first
#: item boundary this long after the first failed one, it takes no new item until
#: a write lands. A worker killed meanwhile loses at most this much more work than
#: the checkpoint policy leaves unsaved anyway (plus the item then under way).
UNSAVED_GRACE_SECONDS = 60.0

#: Doublings beyond this are all capped anyway (and 2.0 ** n must not overflow).
_MAX_DOUBLINGS = 16


def backoff(failures: int, jitter: float) -> float:
    """Seconds between tries after ``failures`` failed writes in a row (at least 1).

    RETRY_FIRST_SECONDS doubling up to RETRY_CAP_SECONDS, made up to RETRY_JITTER
    shorter by ``jitter``, a draw from [0, 1) (0: the full gap).
    """
    doublings = min(max(failures, 1) - 1, _MAX_DOUBLINGS)
    gap = min(RETRY_CAP_SECONDS, RETRY_FIRST_SECONDS * 2.0**doublings)
    return gap * (1.0 - RETRY_JITTER * min(max(jitter, 0.0), 1.0))


def next_try(started: float, took: float, failures: int, jitter: float, *, waiting: bool) -> float:
    """When to try again after a write that began at ``started`` and failed ``took`` seconds later.

    ``failures`` counts the failed writes in a row, this one included. While items
    go on (``waiting`` False) the next try comes after the backoff, and never so
    soon that failed tries take more than WAIT_SHARE of the time: a try that waited
    out its timeout (a server that does not answer) is followed by a longer gap
    than one refused at once. A run that waits for the write anyway (``waiting``)
    only backs off.
    """
    gap = backoff(failures, jitter)
    if not waiting:
        gap = max(gap, took / WAIT_SHARE)
    return started + gap


@dataclass
class Coalescer:
    """Tracks unsaved work since the last write and decides when the next one is due."""

    policy: CheckpointPolicy
    #: When a write last landed (or the run began).
    last_write: float = 0.0
    pending_items: int = 0
    pending_cost: float = 0.0
    #: Boundary writes failed in a row for want of the store (0: none).
    failures: int = 0
    #: When the first of those failures began (None: the last write landed).
    failing_since: float | None = None
    #: When the next try is due, while ``failures``.
    retry_at: float = 0.0

    def record(self, *, items: int = 1, cost_usd: float = 0.0) -> None:
        """Note newly completed, not yet saved work."""
        self.pending_items += items
        self.pending_cost += cost_usd

    def due(self, now: float) -> bool:
        """True when a write should happen at this item boundary."""
        if self.pending_items == 0 and self.pending_cost == 0.0:
            return False
        if self.failures:
            return now >= self.retry_at or self.must_wait(now)
        elapsed = now - self.last_write
        if elapsed < self.policy.min_interval_seconds:
            return False
        policy = self.policy
        every_seconds = policy.every_seconds
        if every_seconds is None:  # not resolved for a store (Run does): the local default
            every_seconds = DEFAULT_EVERY_SECONDS["local"]
        return (
            (policy.every_items is not None and self.pending_items >= policy.every_items)
            or elapsed >= every_seconds
            or (policy.cost_usd is not None and self.pending_cost >= policy.cost_usd)
        )

    def backing_off(self, now: float) -> bool:
        """True while a failed write's next try is not due yet (nor the limit reached)."""
        return self.failures > 0 and now < self.retry_at and not self.must_wait(now)

    def must_wait(self, now: float) -> bool:
        """True once boundary writes have failed for UNSAVED_GRACE_SECONDS.

        The run then takes no new item until a write lands.
        """
        since = self.failing_since
        return since is not None and now - since >= UNSAVED_GRACE_SECONDS

    def failed(self, *, started: float, now: float, jitter: float, waiting: bool = False) -> float:
        """A write that began at ``started`` failed at ``now`` for want of the store.

        The pending work is kept. Returns when the next try is due (see
        :func:`next_try`; never sooner than the policy's minimum interval).
        ``waiting``: the run waits for the write (past the limit), items stopped.
        """
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = started
        retry_at = next_try(started, now - started, self.failures, jitter, waiting=waiting)
        self.retry_at = max(retry_at, started + self.policy.min_interval_seconds)
        return self.retry_at

    def written(self, now: float) -> None:
        """Note that everything pending was just saved."""
        self.last_write = now
        self.pending_items = 0
        self.pending_cost = 0.0
        self.failures = 0
        self.failing_since = None
        self.retry_at = 0.0
