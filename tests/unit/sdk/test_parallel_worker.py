"""The SDK as a parallel worker (RESUMABLE_WORKER_SLOT set), on a real local store.

Two workers in one process, each with its own Run, share one status.json as two
worker processes would (the store's file lock makes each claim atomic); the
tests step their loops by hand to interleave them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from runkit import abandon, read_status

import resumable
from resumable import FencedError, FingerprintMismatchError, LocalStore, Run, Settings
from resumable._slots import LocalSlots, SlotStore
from resumable.errors import StoreUnavailableError
from resumable.v1alpha1 import ResumableBatchStatus, WorkerSlot

T = TypeVar("T")


def prepare(directory: Path, slots: int, **entry: Any) -> None:
    """The status the operator (or runner) writes before it starts the workers."""
    store = LocalStore(directory)
    workers = [WorkerSlot(slot=i, attempt=1) for i in range(slots)]
    for key, value in entry.items():
        setattr(workers[0], key, value)
    with store.locked():
        store.write_status(ResumableBatchStatus(workers=workers))


def worker(directory: Path, slot: int, *, attempt: int = 1, chunk: int = 3) -> Run:
    settings = Settings(
        batch_name="b",
        directory=directory,
        attempt=attempt,
        slot=slot,
        parallelism=2,
        chunk_size=chunk,
        handle_signals=False,
    )
    return resumable.start(settings=settings)


def test_two_workers_claim_disjoint_chunks_and_finish_the_batch_together(
    store_dir: Path,
) -> None:
    prepare(store_dir, 2)
    a, b = worker(store_dir, 0), worker(store_dir, 1)
    loop_a, loop_b = a.items(range(10)), b.items(range(10))
    done: list[tuple[str, int]] = []
    for name, loop in (("a", loop_a), ("b", loop_b), ("a", loop_a), ("b", loop_b)):
        item = next(loop)
        done.append((name, item.index))
    assert done == [("a", 0), ("b", 3), ("a", 1), ("b", 4)]
    for name, loop in (("a", loop_a), ("b", loop_b)):
        done.extend((name, item.index) for item in loop)
    assert sorted(i for _, i in done) == list(range(10))  # each item once
    status = read_status(store_dir)
    assert status["checkpoint"]["completed"] == "0-9"
    assert status["progress"] == "10/10"
    # A slot's fields at their defaults are not stored: no claim left, each idle.
    assert all(w.get("idle") and "claim" not in w for w in status["workers"])
    assert a.summary().finished
    assert b.summary().finished
    assert a.summary().done + b.summary().done == 10


def test_a_new_attempt_of_a_slot_folds_what_the_last_one_committed(store_dir: Path) -> None:
    prepare(store_dir, 2, attempt=2, done="0-1", tokens=7, claim="0-2")
    run = worker(store_dir, 0, attempt=2)
    status = read_status(store_dir)
    assert status["checkpoint"]["completed"] == "0-1"
    assert status["checkpoint"]["tokens"] == 7
    assert (status["workers"][0]["done"], status["workers"][0].get("claim", "")) == ("", "")
    assert [item.index for item in run.items(range(4))] == [2, 3]


def test_a_worker_of_an_older_attempt_is_fenced_before_it_does_anything(store_dir: Path) -> None:
    prepare(store_dir, 2, attempt=3)
    with pytest.raises(FencedError, match="replaced by attempt 3"):
        worker(store_dir, 0, attempt=2)


def test_workers_given_different_lists_are_refused(store_dir: Path) -> None:
    prepare(store_dir, 2)
    a, b = worker(store_dir, 0), worker(store_dir, 1)
    next(a.items(["x", "y", "z", "w"]))
    with pytest.raises(FingerprintMismatchError, match="every worker must be given the same"):
        next(b.items(["x", "y", "z", "changed"]))
    abandon(a)


def test_run_context_is_not_saved_and_the_worker_says_so_once(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare(store_dir, 1)
    run = worker(store_dir, 0)
    for item in run.items(range(7)):
        run.context["last"] = item.index
        run.checkpoint()
    assert capsys.readouterr().err.count("run.context is not saved") == 1
    assert read_status(store_dir)["checkpoint"]["context"] == {}


class AwayFor:
    """A slot backend whose store is away for the first ``times`` claims."""

    def __init__(self, inner: LocalSlots, times: int) -> None:
        self.inner = inner
        self.times = times
        self.interruptible = False

    def describe(self) -> str:
        return self.inner.describe()

    def incarnation(self) -> str:
        return self.inner.incarnation()

    def read(self) -> ResumableBatchStatus:
        return self.inner.read()

    def update(self, slot: int, change: Callable[[ResumableBatchStatus], T], **kw: Any) -> T:
        if kw["exclusive"] and self.times:
            self.times -= 1
            raise StoreUnavailableError("connection refused")
        return self.inner.update(slot, change, **kw)


def test_a_claim_waits_for_the_store_instead_of_failing_the_worker(store_dir: Path) -> None:
    prepare(store_dir, 1)
    local = LocalStore(store_dir)
    backend = AwayFor(LocalSlots(local), times=3)
    store = SlotStore(backend, slot=0, parallelism=1, chunk_size=5)
    pauses: list[float] = []
    settings = Settings(
        batch_name="b", directory=store_dir, attempt=1, slot=0, handle_signals=False
    )
    run = Run(settings, store, local.outputs, local.steps, sleep=pauses.append)
    assert [item.index for item in run.items(range(5))] == [0, 1, 2, 3, 4]
    assert len(pauses) == 3
    assert all(0 < p <= 10 for p in pauses)  # backing off, with jitter, capped
    assert read_status(store_dir)["checkpoint"]["completed"] == "0-4"
