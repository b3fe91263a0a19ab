"""The local runner writes its decisions with the cluster's fence.

`resumable run` keeps the status in status.json, which its worker writes too.
A decision made from a checkpoint the worker has since moved must be refused,
as the API server refuses the operator's patch (422), and made again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from resumable._store import LocalStore
from resumable.v1alpha1 import Checkpoint, ResumableBatch, ResumableBatchStatus
from resumable_core.decision import PodView
from resumable_core.jsonpatch import PatchTestFailedError
from resumable_core.reconcile import decide
from resumable_runner.runner import write_status

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def batch() -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "local", "uid": "u", "generation": 1},
            "spec": {
                "totalItems": 10,
                "retry": {"backoff": {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}},
                "template": {"spec": {"containers": [{"name": "w", "command": ["work"]}]}},
            },
        }
    )


def worker_saves(store: LocalStore, done: int) -> None:
    """What the SDK's checkpoint write does: a fenced replace of the checkpoint."""
    stored = store.load()
    assert stored is not None
    cp = Checkpoint(
        attempt=1,
        next_index=done,
        completed=f"0-{done - 1}",
        items_done=done,
        context={"attempt": 1},
        updated_at=f"2025-03-01T12:00:{done:02d}Z",
    )
    store.save_checkpoint(
        cp,
        progress=f"{done}/10",
        expect_attempt=stored.checkpoint.attempt,
        expect_next=stored.checkpoint.next_index,
    )


def test_a_local_status_write_racing_a_worker_write_is_refused_and_decided_again(
    tmp_path: Path,
) -> None:
    rb = batch()
    store = LocalStore(tmp_path)
    first = decide(rb, [], T0)  # attempt 1: pod b-1
    write_status(store, ResumableBatchStatus(), first)
    worker_saves(store, 4)

    # The runner reads the status and sees its worker gone: the attempt ended...
    read = store.load()
    assert read is not None
    rb.status = read
    ended = [PodView("b-1", 1, "Failed", exit_code=1)]
    decision = decide(rb, ended, T0)
    assert decision.status.restarts == 1
    # ...but the worker wrote once more before the runner's write.
    worker_saves(store, 5)
    with pytest.raises(PatchTestFailedError):
        write_status(store, read, decision)
    stored = store.load()
    assert stored is not None
    assert (stored.checkpoint.next_index, stored.restarts) == (5, 0)  # the worker's write stands

    rb.status = stored  # decided again from what is there
    again = decide(rb, ended, T0)
    write_status(store, stored, again)
    final = store.load()
    assert final is not None
    assert (final.checkpoint.next_index, final.restarts) == (5, 1)
    assert again.create_pod is not None
    assert again.create_pod.start_index == 5
