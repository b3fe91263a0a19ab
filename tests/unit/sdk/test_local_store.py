"""The LocalStore on disk: atomic files, one output per key, nothing left open or behind."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

from resumable import DirectoryOutputs, LocalStore
from resumable._store import SYNCFS_THRESHOLD, atomic_write

pytestmark = pytest.mark.unit


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
