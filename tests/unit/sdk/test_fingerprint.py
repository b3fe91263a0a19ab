"""The item-list fingerprint: resuming against a changed list is a clear error unless opted in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runkit import MakeRun, read_status

from resumable import (
    FingerprintMismatchError,
    ResumableError,
    Run,
    Settings,
    fingerprint,
    start,
)

SDK = Path(__file__).resolve().parents[3] / "sdk"

DOCUMENTS = [f"doc-{i}" for i in range(10)]
CHANGED = [*DOCUMENTS[:5], "doc-new", *DOCUMENTS[6:]]


def stop_after(run: Run, values: list[str], count: int) -> None:
    """Process ``count`` items, then leave the loop (what a crash after a flush leaves)."""
    for item in run.items(values):
        with item:
            pass
        if item.index == count - 1:
            break


def first_index(run: Run, values: list[str]) -> int:
    """The first index the run yields for this list."""
    return next(iter(run.items(values))).index


def test_fingerprint_depends_on_every_value_and_its_position() -> None:
    assert fingerprint(DOCUMENTS) == fingerprint(list(DOCUMENTS))
    assert fingerprint(DOCUMENTS) != fingerprint(CHANGED)
    assert fingerprint(["a", "b"]) != fingerprint(["b", "a"])
    assert fingerprint(DOCUMENTS).startswith("10:")


class Opaque:
    """A user's class without a __repr__ of its own."""

    def __init__(self, name: str) -> None:
        self.name = name


@dataclasses.dataclass
class Document:
    name: str


def test_items_with_a_default_repr_are_a_clear_error_before_any_work(make_run: MakeRun) -> None:
    run = make_run()
    values = [Document("a"), {"nested": [Opaque("b")]}]
    with pytest.raises(ResumableError) as caught:
        first_index(run, values)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "item 2 (or a value inside it, of type Opaque)" in message
    assert "memory address" in message
    assert "fingerprint_items=False" in message
    assert run.summary().done == 0


def test_values_with_a_repr_of_their_own_fingerprint_the_same_in_every_process() -> None:
    values = [Document("a"), Path("/data/x.txt"), {"tags": {"b", "a", "c"}}, b"raw"]
    script = (
        "import dataclasses, pathlib, sys\n"
        "from resumable import fingerprint\n"
        "@dataclasses.dataclass\n"
        "class Document:\n"
        "    name: str\n"
        "values = [Document('a'), pathlib.Path('/data/x.txt'), {'tags': {'b', 'a', 'c'}}, b'raw']\n"
        "print(fingerprint(values))\n"
    )
    prints = set()
    for seed in ("1", "2", "3"):  # string hashing, and so set order, differs per process
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(SDK)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        prints.add(done.stdout.strip())
    assert prints == {fingerprint(values)}


def test_sets_of_numbers_fingerprint_as_earlier_versions_saved_them() -> None:
    # What fingerprint() gave before sets were sorted: json with repr() as the fallback.
    values = [{"pages": {3, 1, 2}}, frozenset({10, 20})]
    digest = hashlib.sha256()
    for value in values:
        digest.update(json.dumps(value, sort_keys=True, default=repr).encode() + b"\n")
    assert fingerprint(values) == f"2:{digest.hexdigest()[:16]}"


def test_resuming_against_a_changed_item_list_is_a_clear_error(
    make_run: MakeRun, store_dir: Path
) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    saved = read_status(store_dir)
    run = make_run()
    with pytest.raises(FingerprintMismatchError) as caught:
        first_index(run, CHANGED)
    message = str(caught.value)
    assert str(store_dir / "status.json") in message
    assert "item list changed" in message
    assert "3 items done" in message
    assert "RESUMABLE_ALLOW_CHANGED_ITEMS=1" in message
    assert "runId" in message
    saved["checkpoint"]["attempt"] = 2  # the claim is the only change on disk
    assert read_status(store_dir)["checkpoint"] == saved["checkpoint"]


def test_resuming_against_the_same_list_needs_no_opt_in(make_run: MakeRun) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    assert first_index(make_run(), list(DOCUMENTS)) == 3


def test_allow_changed_items_resumes_at_the_saved_position(make_run: MakeRun) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    assert first_index(make_run(allow_changed_items=True), CHANGED) == 3


def test_resumable_allow_changed_items_env_opts_in(
    make_run: MakeRun, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    monkeypatch.setenv("RESUMABLE_DIR", str(store_dir))
    monkeypatch.setenv("RESUMABLE_ALLOW_CHANGED_ITEMS", "1")
    settings = dataclasses.replace(Settings.from_env(), handle_signals=False)
    assert settings.allow_changed_items
    run = start(settings=settings)
    assert first_index(run, CHANGED) == 3
    run.close()


def test_a_run_can_skip_fingerprinting_for_lists_that_change_by_design(make_run: MakeRun) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    run = make_run()
    assert next(iter(run.items(CHANGED, fingerprint_items=False))).index == 3


def test_the_new_fingerprint_is_saved_after_opting_in(make_run: MakeRun, store_dir: Path) -> None:
    stop_after(make_run(), DOCUMENTS, 3)
    stop_after(make_run(allow_changed_items=True), CHANGED, 5)
    assert read_status(store_dir)["checkpoint"]["fingerprint"] == fingerprint(CHANGED)
    assert first_index(make_run(), CHANGED) == 5  # no opt-in needed against the new list
