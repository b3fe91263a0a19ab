"""A checkpoint write that failed is not started again by the exit hooks.

The end of the batch, then the loop's ``finally``, then close() from atexit used
to each make the same failed final write, each with a new deadline (three times
the kube store's 20 s FINAL_DEADLINE, past the pod's grace period). New progress
committed since a failed write is still written. On a real LocalStore that fails
on demand; tests/reliability/test_kube_shutdown.py plays it with real workers
against an HTTP server that refuses, fails or never answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runkit import MakeRun, RecordingStore

from resumable import Run, StoreUnavailableError
from resumable.errors import ResumableError
from resumable.v1alpha1 import Checkpoint


class AwayStore(RecordingStore):
    """A LocalStore whose writes fail while ``away`` (as the kube store's do after its deadline)."""

    def __init__(self, root: Path, error: type[ResumableError] = StoreUnavailableError) -> None:
        super().__init__(root)
        self.away = False
        self.error = error
        self.tries: list[bool] = []  # `final` of each write asked for

    def save_checkpoint(self, checkpoint: Checkpoint, **kwargs: Any) -> None:
        self.tries.append(bool(kwargs.get("final")))
        if self.away:
            raise self.error(f"{self.describe()}: away")
        super().save_checkpoint(checkpoint, **kwargs)


def work(run: Run, *, checkpoint_each: bool = False) -> None:
    """The items loop; when it raises, its frame unwinds and the loop's finally runs."""
    for item in run.items(range(5)):
        with item:
            pass
        if checkpoint_each:
            run.checkpoint()


def test_a_failed_end_of_batch_write_is_not_started_again_by_the_exit_hooks(
    make_run: MakeRun, store_dir: Path
) -> None:
    store = AwayStore(store_dir)
    run = make_run(store=store)
    store.away = True
    with pytest.raises(StoreUnavailableError):
        work(run)
    run.close()  # what atexit does
    assert store.tries == [True]  # the end of the batch; not the loop's finally, nor close()
    assert store.writes == []


def test_a_refused_write_is_not_sent_again_by_the_exit_hooks(
    make_run: MakeRun, store_dir: Path
) -> None:
    store = AwayStore(store_dir, error=ResumableError)
    run = make_run(store=store)
    store.away = True
    with pytest.raises(ResumableError):
        work(run, checkpoint_each=True)
    run.close()
    assert store.tries == [True]


def test_progress_committed_after_a_failed_write_is_still_written_at_exit(
    make_run: MakeRun, store_dir: Path
) -> None:
    store = AwayStore(store_dir)
    run = make_run(store=store)
    loop = run.items(range(5))
    with next(loop):
        pass
    store.away = True
    with pytest.raises(StoreUnavailableError):
        run.checkpoint()
    with next(loop):
        pass
    store.away = False
    loop.close()  # the loop's finally: item 1 is new since the failed write
    assert [cp.next_index for cp in store.writes] == [2]
    run.close()
    assert len(store.tries) == 2
