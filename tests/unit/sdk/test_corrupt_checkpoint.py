"""A corrupt or unreadable checkpoint is a clear error naming the file, never a silent restart.

So is one the schema lets through but a run cannot use (ranges, context types).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runkit import MakeRun

from resumable import CorruptCheckpointError, LocalStore

CORRUPT = {
    "garbage": (b"{not json at all", "cannot read checkpoint"),
    "truncated": (b'{"checkpoint": {"nextIndex": 4', "cannot read checkpoint"),
    "empty-file": (b"", "cannot read checkpoint"),
    "not-utf8": (b"\x80\x81\x82", "cannot read checkpoint"),
    "negative-position": (b'{"checkpoint": {"nextIndex": -1}}', "checkpoint.nextIndex"),
    "wrong-type": (b'{"checkpoint": {"attempt": "three"}}', "checkpoint.attempt"),
    "unknown-field": (b'{"checkpoint": {"nextIdx": 3}}', "checkpoint.nextIdx"),
    "not-an-object": (b"[1, 2, 3]", "not a valid checkpoint"),
}


def seed(store_dir: Path, status: bytes) -> dict[str, bytes]:
    """A store holding the given status.json and one output; returns every file's bytes."""
    (store_dir / "outputs").mkdir(parents=True)
    (store_dir / "outputs" / "00000000.json").write_text(json.dumps({"index": 0, "output": 1}))
    (store_dir / "status.json").write_bytes(status)
    return snapshot(store_dir)


def snapshot(store_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store_dir)): p.read_bytes()
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize(("status", "detail"), CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_status_file_is_an_error_naming_it_and_nothing_is_overwritten(
    make_run: MakeRun, store_dir: Path, status: bytes, detail: str
) -> None:
    before = seed(store_dir, status)
    with pytest.raises(CorruptCheckpointError) as caught:
        make_run()
    message = str(caught.value)
    assert message.startswith(f"{store_dir / 'status.json'}: ")
    assert detail in message
    assert snapshot(store_dir) == before


def test_load_reports_the_same_error_as_starting_a_run(store_dir: Path) -> None:
    seed(store_dir, b"{oops")
    with pytest.raises(CorruptCheckpointError, match=r"status\.json: cannot read checkpoint"):
        LocalStore(store_dir).load()


def test_an_unreadable_status_path_is_an_error_naming_it(
    make_run: MakeRun, store_dir: Path
) -> None:
    (store_dir / "status.json").mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(CorruptCheckpointError, match=r"status\.json: cannot read checkpoint"):
        make_run()


def test_a_corrupt_step_result_is_an_error_naming_its_file(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    run.step("research", lambda: {"sources": 3})
    (step_file,) = (store_dir / "steps").glob("*.json")
    step_file.write_text("{half a resu")
    again = make_run()
    with pytest.raises(CorruptCheckpointError, match=str(step_file)):
        again.step("research", lambda: {"sources": 0})
    assert step_file.read_text() == "{half a resu"


def test_an_empty_store_directory_starts_fresh(make_run: MakeRun, store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    run = make_run()
    assert (run.attempt, run.resumed_from) == (1, 0)


@pytest.mark.parametrize(
    ("checkpoint", "says"),
    [
        ({"completed": "0-4x", "nextIndex": 5}, "bad index range '0-4x'"),
        ({"completed": "4-0", "nextIndex": 5}, "bad index range '4-0'"),
        ({"context": {"iteration": "many"}}, "context.iteration must be an integer"),
        ({"context": {"user": ["not", "a", "dict"]}}, "context.user must be an object"),
    ],
    ids=["completed-not-ranges", "completed-reversed", "iteration-not-a-number", "user-a-list"],
)
def test_state_the_schema_allows_but_a_run_cannot_use_is_an_error_naming_the_file(
    store_dir: Path, make_run: MakeRun, checkpoint: dict[str, Any], says: str
) -> None:
    store_dir.mkdir()
    status = {"checkpoint": {"attempt": 1, **checkpoint}}
    (store_dir / "status.json").write_text(json.dumps(status))
    with pytest.raises(CorruptCheckpointError) as caught:
        make_run()
    assert str(caught.value).startswith(f"{store_dir / 'status.json'}: not a valid checkpoint")
    assert says in str(caught.value)
    assert json.loads((store_dir / "status.json").read_text()) == status  # left as it was
