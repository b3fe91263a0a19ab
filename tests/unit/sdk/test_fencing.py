"""Fencing: the attempt number guards every write; an older attempt never overwrites a newer one.

Nor does a forked child write its parent's progress when it exits.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from runkit import MakeRun, RecordingStore, read_status

from resumable import CheckpointPolicy, FencedError, Item, LocalStore, Run, Settings, start

EVERY_ITEM = CheckpointPolicy(every_items=1, min_interval_seconds=0)


def commit_one(items: Iterator[Item[int]]) -> None:
    """Take the next item from a run's item iterator and commit it."""
    with next(items):
        pass


@pytest.mark.parametrize("shared", [True, False], ids=["one-LocalStore", "two-LocalStores"])
def test_the_older_attempts_write_raises_fenced_and_leaves_the_newer_state_intact(
    make_run: MakeRun, store_dir: Path, shared: bool
) -> None:
    store = RecordingStore(store_dir)
    old = make_run(policy=EVERY_ITEM, store=store)
    old_items = old.items(range(20))
    for _ in range(3):
        commit_one(old_items)  # the old attempt saved items 0-2

    new = make_run(policy=EVERY_ITEM, store=store if shared else None)
    assert (old.attempt, new.attempt) == (1, 2)
    new_items = new.items(range(20))
    for _ in range(5):
        commit_one(new_items)  # the new attempt saved items 3-7
    newer = read_status(store_dir)

    with pytest.raises(FencedError, match=r"attempt 1 was replaced by attempt 2"):
        commit_one(old_items)
    assert read_status(store_dir) == newer
    assert newer["checkpoint"]["attempt"] == 2
    assert newer["checkpoint"]["completed"] == "0-7"


def test_a_fenced_run_stops_writing_even_when_it_closes(make_run: MakeRun, store_dir: Path) -> None:
    old = make_run(policy=EVERY_ITEM)
    old_items = old.items(range(20))
    commit_one(old_items)
    make_run(policy=EVERY_ITEM)  # attempt 2 claims the batch
    claimed = read_status(store_dir)
    with pytest.raises(FencedError):
        commit_one(old_items)
    old.close()
    old.checkpoint()
    assert read_status(store_dir) == claimed


def test_an_explicit_older_attempt_is_refused_at_start(make_run: MakeRun, store_dir: Path) -> None:
    for _ in range(3):
        make_run()  # attempts 1, 2, 3
    with pytest.raises(FencedError, match=r"attempt 2 is older than attempt 3"):
        make_run(attempt=2)
    assert read_status(store_dir)["checkpoint"]["attempt"] == 3


def test_resumable_attempt_env_older_than_the_store_is_refused_by_start(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(store_dir)
    store.claim(5)
    monkeypatch.setenv("RESUMABLE_DIR", str(store_dir))
    monkeypatch.setenv("RESUMABLE_ATTEMPT", "4")
    with pytest.raises(FencedError, match=str(store_dir / "status.json")):
        start(settings=Settings.from_env())


def test_an_explicit_newer_attempt_takes_over_and_keeps_the_progress(
    make_run: MakeRun, store_dir: Path
) -> None:
    old = make_run(policy=EVERY_ITEM)
    old_items = old.items(range(10))
    for _ in range(4):
        commit_one(old_items)
    new = make_run(attempt=7)
    assert (new.attempt, new.resumed_from) == (7, 4)
    assert read_status(store_dir)["checkpoint"]["attempt"] == 7


def test_start_claims_the_next_attempt_and_runs_the_batch_on_the_local_store(
    store_dir: Path,
) -> None:
    LocalStore(store_dir).claim(3)
    settings = Settings(directory=store_dir, handle_signals=False)
    run = start(settings=settings)
    assert isinstance(run, Run)
    assert run.attempt == 4
    assert [item.index for item in run.items(range(3))] == [0, 1, 2]
    assert read_status(store_dir)["checkpoint"]["finished"] is True


def test_a_forked_child_that_exits_normally_does_not_write_its_parents_progress(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        import resumable
        run = resumable.start("forky", directory=sys.argv[1])
        for item in run.items(range(6)):
            with item:
                if item.index == 3:
                    pid = os.fork()
                    if pid == 0:
                        sys.exit(0)  # unwinds the generator and runs atexit in the child
                    os.waitpid(pid, 0)
        print(run.summary().done)
        """
    )
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", script, str(store)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr  # the parent was not fenced by its child
    assert done.stdout.strip() == "6"
    assert read_status(store)["checkpoint"]["finished"] is True
