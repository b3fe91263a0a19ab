"""When to write a checkpoint: the coalescing rule of ``spec.checkpoint``, kept pure.

The run asks :meth:`Coalescer.due` at every item boundary; a write is due when
any trigger fires (items, seconds, cost) and the minimum interval has passed.
The final write at exit bypasses it. Pure so it is tested without clocks or disks.
"""

from __future__ import annotations

from dataclasses import dataclass

from resumable.v1alpha1 import CheckpointPolicy


@dataclass
class Coalescer:
    """Tracks unsaved work since the last write and decides when the next one is due."""

    policy: CheckpointPolicy
    last_write: float = 0.0
    pending_items: int = 0
    pending_cost: float = 0.0

    def record(self, *, items: int = 1, cost_usd: float = 0.0) -> None:
        """Note newly completed, not yet saved work."""
        self.pending_items += items
        self.pending_cost += cost_usd

    def due(self, now: float) -> bool:
        """True when a write should happen at this item boundary."""
        if self.pending_items == 0 and self.pending_cost == 0.0:
            return False
        elapsed = now - self.last_write
        if elapsed < self.policy.min_interval_seconds:
            return False
        policy = self.policy
        return (
            (policy.every_items is not None and self.pending_items >= policy.every_items)
            or elapsed >= policy.every_seconds
            or (policy.cost_usd is not None and self.pending_cost >= policy.cost_usd)
        )

    def deferred(self, now: float) -> None:
        """A due write could not be made: keep the pending work, wait before trying again."""
        self.last_write = now

    def written(self, now: float) -> None:
        """Note that everything pending was just saved."""
        self.last_write = now
        self.pending_items = 0
        self.pending_cost = 0.0
