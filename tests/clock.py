"""A clock a test sets the time of day of: real seconds pass, from a chosen instant.

Given to the executors (``LocalRunner(clock=...)``, ``Controller(clock=...)``), which
pass its ``now`` to the decisions: a test puts a batch a second before its window
opens, or moves it to the next night, while its worker runs in real time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class ShiftedClock:
    """``now`` is the instant last set plus the real time since; safe from any thread."""

    def __init__(self, at: datetime) -> None:
        self._lock = threading.Lock()
        self.set(at)

    def set(self, at: datetime) -> None:
        """From now on, the clock reads ``at`` plus the real time since this call."""
        with self._lock:
            self._at, self._since = at, time.monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            return self._at + timedelta(seconds=time.monotonic() - self._since)
