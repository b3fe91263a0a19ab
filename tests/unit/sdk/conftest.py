"""Fixtures for the SDK's unit tests: runs on a real LocalStore, a fake clock, a write log.

- ``make_run(directory=None, *, policy=None, clock=None, store=None, **settings)``:
  a :class:`resumable.Run` on a :class:`RecordingStore` (signal handlers off);
  every run is closed and forgotten by atexit after the test.
- ``store_dir``: a fresh, not yet existing store directory.

The helpers the tests import themselves live in runkit.py.

Every test runs with no RESUMABLE_* variables and outside any cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runkit import FakeClock, MakeRun, RecordingStore

from resumable import CheckpointPolicy, LocalStore, ResumableError, Run, Settings


@pytest.fixture(autouse=True)
def _no_resumable_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RESUMABLE_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def make_run(store_dir: Path) -> Iterator[MakeRun]:
    runs: list[Run] = []

    def make(
        directory: Path | None = None,
        *,
        policy: CheckpointPolicy | None = None,
        clock: FakeClock | None = None,
        store: LocalStore | None = None,
        **settings: Any,
    ) -> Run:
        root = directory or store_dir
        chosen = Settings(
            batch_name=settings.pop("batch_name", "unit"),
            directory=root,
            policy=policy or CheckpointPolicy(),
            handle_signals=False,
            **settings,
        )
        local = store or RecordingStore(root)
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        run = Run(chosen, local, local.outputs, local.steps, **kwargs)
        runs.append(run)
        return run

    yield make
    for run in runs:
        with contextlib.suppress(ResumableError):
            run.close()
        atexit.unregister(run._atexit)
