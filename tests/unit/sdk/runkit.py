"""Helpers for the SDK's unit tests (imported by conftest.py and the test modules).

- ``FakeClock``: a monotonic clock the test advances by hand.
- ``RecordingStore``: a LocalStore that keeps every checkpoint it was asked to write.
- ``read_status(directory)``: the status.json as JSON, read straight from disk.
- ``abandon(run)``: forget a run the way a killed process would (no flush).
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resumable import LocalStore, Run
from resumable.v1alpha1 import Checkpoint

#: The ``make_run`` fixture's type (see conftest.py).
MakeRun = Callable[..., Run]


class FakeClock:
    """A clock for the run's policy: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingStore(LocalStore):
    """A LocalStore that remembers every checkpoint written through it (after success)."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self.writes: list[Checkpoint] = []

    def save_checkpoint(self, checkpoint: Checkpoint, **kwargs: Any) -> None:
        super().save_checkpoint(checkpoint, **kwargs)
        self.writes.append(checkpoint.model_copy(deep=True))


def read_status(directory: Path) -> dict[str, Any]:
    """status.json as written, without going through the SDK."""
    data: dict[str, Any] = json.loads((directory / "status.json").read_text())
    return data


def abandon(run: Run) -> None:
    """Drop a run as a killed process would: no flush, no close, no atexit."""
    run._closed = True
    atexit.unregister(run._atexit)
