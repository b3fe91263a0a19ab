"""The LocalStore on disk: atomic files, one output per key, nothing left open or behind."""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from resumable import DirectoryOutputs, IndexSet, LocalStore, _store
from resumable._store import SYNCFS_THRESHOLD, atomic_write, create_new
from resumable.errors import FencedError
from resumable.v1alpha1 import Checkpoint, Condition, ResumableBatchStatus


def advance(store: LocalStore, attempt: int, *, to: int) -> None:
    """Save the checkpoint "items 0..to-1 done" for attempt, fenced on the one before it."""
    store.save_checkpoint(
        Checkpoint(attempt=attempt, next_index=to, completed=str(IndexSet(range(to)))),
        progress=str(to),
        expect_attempt=attempt,
        expect_next=to - 1,
    )


def store_at_item_1(tmp_path: Path) -> tuple[LocalStore, int]:
    """A store claimed by a first attempt that saved item 0: the store and that attempt."""
    store = LocalStore(tmp_path / "store")
    _, attempt = store.claim(None)
    advance(store, attempt, to=1)
    return store, attempt


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_redo_overwrites_the_output_of_its_item(tmp_path: Path) -> None:
    outputs = DirectoryOutputs(tmp_path / "outputs")
    outputs.put("00000007", {"try": 1})
    outputs.put("00000007", {"try": 2})
    outputs.sync()
    assert outputs.keys() == ["00000007"]
    assert outputs.get("00000007") == {"try": 2}


@pytest.mark.parametrize("count", [1, SYNCFS_THRESHOLD + 5], ids=["fsync-each", "syncfs"])
def test_sync_makes_every_put_readable_and_forgets_them(tmp_path: Path, count: int) -> None:
    outputs = DirectoryOutputs(tmp_path / "outputs")
    for index in range(count):
        outputs.put(f"{index:08d}", {"index": index})
    outputs.sync()
    assert outputs._unsynced == []
    assert [json.loads(p.read_text()) for p in sorted(outputs.root.glob("*.json"))] == [
        {"index": i} for i in range(count)
    ]


def test_atomic_write_leaves_only_the_target_behind(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    for round_no in range(5):
        atomic_write(target, json.dumps({"round": round_no}).encode())
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert json.loads(target.read_text()) == {"round": 4}


def test_atomic_write_that_fails_removes_its_temp_file(tmp_path: Path) -> None:
    (tmp_path / "status.json").mkdir()  # renaming a file over a directory fails
    with pytest.raises(OSError, match="Is a directory"):
        atomic_write(tmp_path / "status.json", b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.parametrize("key", ["", "a/b", ".hidden"])
def test_output_keys_that_would_escape_or_hide_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="bad output key"):
        DirectoryOutputs(tmp_path).put(key, 1)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_dropped_store_leaves_no_file_descriptor_open(tmp_path: Path) -> None:
    gc.collect()
    before = open_fds()
    for index in range(50):
        store = LocalStore(tmp_path / f"store{index}")
        store.claim(None)
    del store
    gc.collect()
    assert open_fds() == before


def test_claim_takes_the_next_attempt_and_writes_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    assert store.claim(None)[1] == 1
    assert LocalStore(tmp_path / "store").claim(None)[1] == 2
    status = store.load()
    assert status is not None
    assert status.checkpoint.attempt == 2


def test_checkpoint_writes_keep_the_status_fields_the_runner_wrote(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _, attempt = store.claim(None)
    with store.locked():
        status = store.load()
        assert status is not None
        status.restarts = 3
        status.run_id = "r2"
        status.conditions = [Condition(type="Progressing", status="True", reason="Running")]
        store.write_status(status)
    for position in (1, 2):
        store.save_checkpoint(
            Checkpoint(attempt=attempt, next_index=position, completed=f"0-{position - 1}"),
            progress=f"{position}/9",
            expect_attempt=attempt,
            expect_next=position - 1,
        )
    saved = store.load()
    assert saved is not None
    assert (saved.restarts, saved.run_id, saved.progress) == (3, "r2", "2/9")
    assert [c.reason for c in saved.conditions] == ["Running"]
    assert (saved.checkpoint.next_index, saved.checkpoint.completed) == (2, "0-1")


def test_a_write_by_another_process_is_seen_before_the_next_checkpoint(tmp_path: Path) -> None:
    worker, attempt = store_at_item_1(tmp_path)
    runner = LocalStore(tmp_path / "store")  # another process's view of the same files
    with runner.locked():
        status = runner.load()
        assert status is not None
        status.restarts = 1
        runner.write_status(status)
    advance(worker, attempt, to=2)
    saved = worker.load()
    assert saved is not None
    assert (saved.restarts, saved.checkpoint.next_index) == (1, 2)
    runner.claim(None)  # a newer attempt takes over
    with pytest.raises(FencedError, match=f"attempt {attempt} was replaced by attempt"):
        advance(worker, attempt, to=3)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_store_keeps_the_status_file_it_wrote_open_so_its_inode_number_is_not_reused(
    tmp_path: Path,
) -> None:
    # ext4 hands a freed inode number to a later new file. If the worker's
    # status.json were freed when another attempt replaced it, a later file with
    # that number (and, on a coarse clock, the same mtime) would pass for it. An
    # inode that is still open is not freed, so its number stays taken.
    worker, attempt = store_at_item_1(tmp_path)
    status_path = tmp_path / "store" / "status.json"
    mine = os.stat(status_path)
    for _ in range(3):  # newer attempts replace the file, each from a store then dropped
        LocalStore(tmp_path / "store").claim(None)
        gc.collect()
    assert os.stat(status_path).st_ino != mine.st_ino
    still_open = [
        st
        for st in (os.stat(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
    ]  # fmt: skip
    assert [st.st_nlink for st in still_open] == [0]  # replaced, unlinked, but held
    with pytest.raises(FencedError, match=f"attempt {attempt} was replaced by attempt"):
        advance(worker, attempt, to=2)


def test_a_status_file_changed_in_place_is_seen_even_with_the_same_inode_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone rewrites status.json in place (an editor, a copy over it) to the
    # same size within one tick of a coarse clock: only ctime tells.
    worker, attempt = store_at_item_1(tmp_path)
    status_path = tmp_path / "store" / "status.json"
    mine = os.stat(status_path)
    text = status_path.read_text()
    edited = text.replace('"attempt":1', '"attempt":7')
    assert len(edited) == len(text)
    with status_path.open("r+") as handle:
        handle.write(edited)
    real_stat = os.stat

    def coarse_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        st = real_stat(path, *args, **kwargs)
        if path != _store.STATUS_FILE:
            return st
        return SimpleNamespace(
            st_dev=st.st_dev,
            st_ino=st.st_ino,
            st_size=st.st_size,
            st_mtime_ns=mine.st_mtime_ns,  # the clock did not tick
            st_ctime_ns=mine.st_ctime_ns + 1,
        )

    monkeypatch.setattr(_store.os, "stat", coarse_stat)
    with pytest.raises(FencedError, match=f"attempt {attempt} was replaced by attempt 7"):
        advance(worker, attempt, to=2)


def test_a_status_write_interrupted_after_its_rename_leaves_the_next_write_rereading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    _, attempt = store.claim(None)
    real_remember = store._remember
    interruptions = [KeyboardInterrupt()]

    def interrupted(status: ResumableBatchStatus) -> None:
        if interruptions:
            raise interruptions.pop()
        real_remember(status)

    status = store.load()
    assert status is not None
    status.restarts = 5
    monkeypatch.setattr(store, "_remember", interrupted)
    with store.locked(), pytest.raises(KeyboardInterrupt):
        store.write_status(status)  # renamed into place, then interrupted
    advance(store, attempt, to=1)
    saved = store.load()
    assert saved is not None
    assert (saved.restarts, saved.checkpoint.next_index) == (5, 1)


def test_a_retry_after_a_failed_directory_fsync_writes_instead_of_fencing_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EIO from the directory fsync comes after the rename: status.json already holds
    # the new position, but the caller still expects the old one when it retries.
    store, attempt = store_at_item_1(tmp_path)
    real_fsync = os.fsync
    faults = [OSError(5, "Input/output error")]

    def failing_dir_fsync(fd: int) -> None:
        if fd == store._root_fd and faults:
            raise faults.pop()
        real_fsync(fd)

    monkeypatch.setattr(_store.os, "fsync", failing_dir_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        advance(store, attempt, to=2)
    advance(store, attempt, to=2)  # the same write again, fenced on position 1
    saved = store.load()
    assert saved is not None
    assert saved.checkpoint.next_index == 2
    with pytest.raises(FencedError, match="position moved to 2"):
        advance(store, attempt, to=2)  # a writer that really is behind is still refused


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_waits_for_the_lock_its_parent_holds(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.claim(None)
    read_end, write_end = os.pipe()
    with store.locked():
        pid = os.fork()
        if pid == 0:  # the child: time how long the parent keeps it out
            code = 1
            try:
                started = time.monotonic()
                with store.locked():
                    os.write(write_end, f"{time.monotonic() - started:.3f}".encode())
                code = 0
            finally:
                os._exit(code)
        time.sleep(0.5)
    os.close(write_end)
    try:
        answered, _, _ = select.select([read_end], [], [], 10)
        if not answered:  # stuck on a lock nobody in the child holds
            os.kill(pid, signal.SIGKILL)
        waited = float(os.read(read_end, 64) or b"-1") if answered else None
    finally:
        os.close(read_end)
        _, wait_status = os.waitpid(pid, 0)
    assert waited is not None, "the child never got the lock after the parent let go"
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert waited >= 0.4


def test_a_claim_removes_status_temp_files_left_by_killed_writers(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    LocalStore(store_dir).claim(None)
    old = store_dir / ".status.json.4242.0a1b2c3d.tmp"
    recent = store_dir / ".status.json.4343.0a1b2c3d.tmp"
    for path in (old, recent):
        path.write_bytes(b'{"checkpoint":')
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    LocalStore(store_dir).claim(None)
    assert not old.exists()
    assert recent.exists()  # maybe a live writer that flock does not reach


def test_write_status_without_the_lock_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(RuntimeError, match=r"needs store\.locked\(\)"):
        store.write_status(ResumableBatchStatus())
    assert not (tmp_path / "store" / "status.json").exists()
    assert not Path("status.json").exists()
    store.claim(None)  # took and released the lock: still no write outside it
    with pytest.raises(RuntimeError, match=r"needs store\.locked\(\)"):
        store.write_status(ResumableBatchStatus(restarts=7))
    saved = store.load()
    assert saved is not None
    assert saved.restarts == 0


@pytest.mark.parametrize("failing", ["store", ".lock"])
def test_a_failed_lock_setup_is_redone_whole_and_never_writes_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    real_open = os.open
    failures = [OSError(24, "Too many open files")]

    def flaky_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.path.basename(path) == failing and failures:
            raise failures.pop()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(_store.os, "open", flaky_open)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(OSError, match="Too many open files"):
        store.claim(None)
    assert store.claim(None)[1] == 1
    advance(store, 1, to=1)
    assert list(cwd.iterdir()) == []
    saved = store.load()
    assert saved is not None
    assert saved.checkpoint.next_index == 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_dropped_output_stores_leave_no_file_descriptor_open(tmp_path: Path) -> None:
    gc.collect()
    before = open_fds()
    for index in range(20):
        outputs = DirectoryOutputs(tmp_path / f"outputs{index}")
        outputs.mark_inflight(index)
        outputs.put("00000000", {"index": index})
        outputs.sync()
    del outputs
    gc.collect()
    assert open_fds() == before


def open_dir(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


needs_o_tmpfile = pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="no O_TMPFILE")


@needs_o_tmpfile
def test_create_new_links_a_complete_file_and_nothing_else(tmp_path: Path) -> None:
    dir_fd = open_dir(tmp_path / "outputs")
    try:
        assert create_new("00000001.json", b'{"a": 1}', dir_fd=dir_fd) is True
    finally:
        os.close(dir_fd)
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["00000001.json"]
    assert json.loads((tmp_path / "outputs" / "00000001.json").read_text()) == {"a": 1}


@needs_o_tmpfile
def test_create_new_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    dir_fd = open_dir(tmp_path / "outputs")
    try:
        assert create_new("00000001.json", b'{"try": 1}', dir_fd=dir_fd) is True
        assert create_new("00000001.json", b'{"try": 2}', dir_fd=dir_fd) is False
    finally:
        os.close(dir_fd)
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["00000001.json"]
    assert json.loads((tmp_path / "outputs" / "00000001.json").read_text()) == {"try": 1}


def test_outputs_fall_back_to_rename_where_there_is_no_o_tmpfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # macOS and some network filesystems have no O_TMPFILE; simulate that platform.
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    outputs = DirectoryOutputs(tmp_path / "outputs")
    outputs.put("00000003", {"try": 1})
    outputs.put("00000003", {"try": 2})
    outputs.put("00000004", {"try": 1})
    outputs.sync()
    assert outputs._tmpfile is False
    assert outputs.keys() == ["00000003", "00000004"]
    assert outputs.get("00000003") == {"try": 2}
    assert sorted(p.name for p in outputs.root.iterdir()) == ["00000003.json", "00000004.json"]


def test_a_put_is_readable_at_once_and_on_disk_after_sync(tmp_path: Path) -> None:
    outputs = DirectoryOutputs(tmp_path / "outputs")
    outputs.put("00000001", {"summary": "one"})
    assert outputs.get("00000001") == {"summary": "one"}
    assert outputs.keys() == ["00000001"]
    assert not outputs.root.exists()  # no file yet: the next sync creates it
    outputs.sync()
    assert json.loads((outputs.root / "00000001.json").read_text()) == {"summary": "one"}
    assert DirectoryOutputs(outputs.root).get("00000001") == {"summary": "one"}


def test_pending_outputs_are_written_early_when_too_many_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "MAX_PENDING_FILES", 3)
    outputs = DirectoryOutputs(tmp_path / "outputs")
    for index in range(7):
        outputs.put(f"{index:08d}", {"index": index})
    on_disk = sorted(p.name for p in outputs.root.glob("*.json"))
    assert on_disk == [f"{i:08d}.json" for i in range(6)]  # two batches of three
    assert outputs.keys() == [f"{i:08d}" for i in range(7)]
    outputs.sync()
    assert len(list(outputs.root.glob("*.json"))) == 7


def test_clear_drops_pending_outputs_too(tmp_path: Path) -> None:
    outputs = DirectoryOutputs(tmp_path / "steps")
    outputs.put("run-a", {"result": 1})
    outputs.sync()
    outputs.put("run-b", {"result": 2})
    outputs.clear()
    outputs.sync()
    assert outputs.keys() == []
