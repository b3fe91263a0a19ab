"""patches.py: the fenced status patch both executors write decisions with.

Applied with jsonpatch.apply_patch, the applier `resumable run` uses, which
refuses a failed ``test`` as the API server does (422).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_core import patches
from resumable_core.decision import PodView
from resumable_core.jsonpatch import PatchTestFailedError, apply_patch
from resumable_core.reconcile import decide

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

OLD: dict[str, Any] = {
    "checkpoint": {"attempt": 2, "nextIndex": 20, "completed": "0-19", "itemsDone": 20},
    "progress": "20/50",
    "restarts": 1,
    "activePod": "docs-2",
    "retryAfter": "2025-03-01T12:00:02Z",
}


def test_status_patch_tests_the_attempt_and_writes_only_changed_fields() -> None:
    new = copy.deepcopy(OLD)
    new["checkpoint"]["attempt"] = 3
    new["activePod"] = "docs-3"
    del new["retryAfter"]
    ops = patches.status_patch(OLD, new)
    assert ops[0] == {"op": "test", "path": "/status/checkpoint/attempt", "value": 2}
    assert sorted(ops[1:], key=lambda o: o["path"]) == [
        {"op": "add", "path": "/status/activePod", "value": "docs-3"},
        {"op": "add", "path": "/status/checkpoint/attempt", "value": 3},
        {"op": "remove", "path": "/status/retryAfter"},
    ]


def test_status_patch_is_empty_when_nothing_changed() -> None:
    assert patches.status_patch(OLD, copy.deepcopy(OLD)) == []
    assert patches.status_patch(OLD, copy.deepcopy(OLD), fence_checkpoint=True) == []


def test_status_patch_on_an_empty_status_adds_it_whole() -> None:
    new = {"checkpoint": {"attempt": 1}, "phase": "Running"}
    assert patches.status_patch(None, new) == [{"op": "add", "path": "/status", "value": new}]
    assert apply_patch({"spec": {}}, patches.status_patch({}, new)) == {"spec": {}, "status": new}


def test_status_patch_applies_and_keeps_fields_it_did_not_change() -> None:
    new = copy.deepcopy(OLD)
    new["restarts"] = 2
    new["checkpoint"]["attempt"] = 3
    ops = patches.status_patch(OLD, new)
    # Meanwhile the worker wrote a newer position; the operator's patch must not undo it.
    current = {"spec": {"x": 1}, "status": copy.deepcopy(OLD)}
    current["status"]["checkpoint"].update(nextIndex=25, completed="0-24", itemsDone=25)
    patched = apply_patch(current, ops)
    assert patched["status"]["restarts"] == 2
    assert patched["status"]["checkpoint"] == {
        "attempt": 3,
        "nextIndex": 25,
        "completed": "0-24",
        "itemsDone": 25,
    }
    assert patched["spec"] == {"x": 1}
    assert current["status"]["checkpoint"]["attempt"] == 2  # apply_patch copies


def test_status_patch_is_refused_when_the_attempt_changed_underneath() -> None:
    new = copy.deepcopy(OLD)
    new["checkpoint"]["attempt"] = 3
    ops = patches.status_patch(OLD, new)
    current = {"status": copy.deepcopy(OLD)}
    current["status"]["checkpoint"]["attempt"] = 3  # another replica started attempt 3 already
    with pytest.raises(PatchTestFailedError):
        apply_patch(current, ops)


def test_status_patch_removes_checkpoint_fields_that_were_cleared() -> None:
    old = copy.deepcopy(OLD)
    old["checkpoint"]["lastError"] = "boom"
    new = copy.deepcopy(OLD)
    ops = patches.status_patch(old, new)
    assert {"op": "remove", "path": "/status/checkpoint/lastError"} in ops
    assert "lastError" not in apply_patch({"status": old}, ops)["status"]["checkpoint"]


def test_a_checkpoint_fenced_patch_is_refused_after_a_worker_write_the_plain_one_is_not() -> None:
    new = copy.deepcopy(OLD)
    new["restarts"] = 2
    written = {"status": copy.deepcopy(OLD)}
    written["status"]["checkpoint"].update(nextIndex=21, completed="0-20", itemsDone=21)
    apply_patch(written, patches.status_patch(OLD, new))  # the same attempt: no conflict
    with pytest.raises(PatchTestFailedError):
        apply_patch(written, patches.status_patch(OLD, new, fence_checkpoint=True))


def test_apply_patch_test_op_on_a_missing_field_fails() -> None:
    with pytest.raises(PatchTestFailedError):
        apply_patch({"status": {}}, [{"op": "test", "path": "/status/checkpoint", "value": None}])


# ------------------------------------------------------------------ decision_patch


def running_batch() -> ResumableBatch:
    """Attempt 1 running, its worker has saved items 0-3."""
    batch = ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "totalItems": 10,
                "template": {"spec": {"containers": [{"name": "w", "command": ["work"]}]}},
            },
        }
    )
    batch.status = decide(batch, [], T0).status
    cp = batch.status.checkpoint
    cp.next_index, cp.completed, cp.items_done = 4, "0-3", 4
    cp.updated_at, cp.context = "2025-03-01T12:00:01Z", {"attempt": 1}
    return batch


def test_a_decision_accounting_for_an_attempts_end_is_fenced_on_the_checkpoint() -> None:
    batch = running_batch()
    read = patches.dump_status(batch.status)
    decision = decide(batch, [PodView("b-1", 1, "Failed", exit_code=1)], T0)
    assert decision.rests_on_checkpoint
    ops = patches.decision_patch(read, decision)
    tested = {op["path"]: op["value"] for op in ops if op["op"] == "test"}
    assert tested == {
        "/status/checkpoint/attempt": 1,
        "/status/checkpoint/nextIndex": 4,
        "/status/checkpoint/finished": False,
        "/status/checkpoint/updatedAt": "2025-03-01T12:00:01Z",
    }
    # The dead pod's process still wrote once more (a lost node): the write is refused.
    later = {"status": copy.deepcopy(read)}
    later["status"]["checkpoint"].update(nextIndex=5, completed="0-4", itemsDone=5)
    with pytest.raises(PatchTestFailedError):
        apply_patch(later, ops)


def test_a_decision_that_only_watches_a_running_attempt_does_not_race_its_worker() -> None:
    batch = running_batch()
    read = patches.dump_status(batch.status)
    decision = decide(batch, [PodView("b-1", 1, "Running")], T0)
    assert decision.status_changed  # Progressing: Running from item 5
    assert not decision.rests_on_checkpoint
    ops = patches.decision_patch(read, decision)
    assert [op for op in ops if op["op"] == "test"] == [
        {"op": "test", "path": "/status/checkpoint/attempt", "value": 1}
    ]
    later = {"status": copy.deepcopy(read)}
    later["status"]["checkpoint"].update(nextIndex=5, completed="0-4", itemsDone=5)
    assert apply_patch(later, ops)["status"]["checkpoint"]["nextIndex"] == 5


def test_a_decision_that_changed_nothing_writes_nothing() -> None:
    batch = running_batch()
    batch.status = decide(batch, [PodView("b-1", 1, "Running")], T0).status
    decision = decide(batch, [PodView("b-1", 1, "Running")], T0)
    assert patches.decision_patch(patches.dump_status(batch.status), decision) == []
