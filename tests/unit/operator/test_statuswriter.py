"""StatusWriter: a decision's status as the fenced patch, a failed fence as a conflict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from resumable.kubeapi import KubeApi, api_error
from resumable.v1alpha1 import ResumableBatch
from resumable_core import patches
from resumable_core.decision import PodView
from resumable_core.jsonpatch import PatchTestFailedError, apply_patch
from resumable_core.reconcile import decide
from resumable_operator.statuswriter import StatusConflictError, StatusWriter

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class StatusApi:
    """A batch's status subresource: applies JSON patches, a failed test as a 422."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.doc = {"status": status}
        self.patches = 0

    def request(self, method: str, path: str, **kw: Any) -> Any:
        assert (method, path) == (
            "PATCH",
            "/apis/resumable.dev/v1alpha1/namespaces/ns/resumablebatches/b/status",
        )
        self.patches += 1
        try:
            self.doc = apply_patch(self.doc, kw["body"])
        except PatchTestFailedError as exc:
            raise api_error(422, str(exc)) from exc
        return self.doc


def running() -> ResumableBatch:
    rb = ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "totalItems": 10,
                "template": {"spec": {"containers": [{"name": "w", "command": ["work"]}]}},
            },
        }
    )
    rb.status = decide(rb, [], T0).status
    rb.status.checkpoint.next_index = 3
    return rb


def test_a_decision_that_changed_nothing_sends_nothing() -> None:
    rb = running()
    rb.status = decide(rb, [PodView("b-1", 1, "Running")], T0).status
    read = patches.dump_status(rb.status)
    api = StatusApi(read)
    again = decide(rb, [PodView("b-1", 1, "Running")], T0)
    assert StatusWriter(cast(KubeApi, api)).write("ns", "b", read, again) == read
    assert api.patches == 0


def test_the_written_status_is_returned_and_a_worker_write_since_the_read_is_a_conflict() -> None:
    rb = running()
    read = patches.dump_status(rb.status)
    ended = decide(rb, [PodView("b-1", 1, "Failed", exit_code=1)], T0)
    writer_api = StatusApi(dict(read))
    stored = StatusWriter(cast(KubeApi, writer_api)).write("ns", "b", read, ended)
    assert stored is not None
    assert stored["restarts"] == 1
    # The same decision over a checkpoint the worker has moved since: refused.
    moved = patches.dump_status(rb.status)
    moved["checkpoint"]["nextIndex"] = 4
    with pytest.raises(StatusConflictError):
        StatusWriter(cast(KubeApi, StatusApi(moved))).write("ns", "b", read, ended)
