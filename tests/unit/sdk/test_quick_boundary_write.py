"""KubeStore.try_checkpoint: a boundary write in one quick try, fenced and refused as ever.

On a fake KubeApi that holds one batch and applies JSON patches as kube-apiserver
does (a failed ``test`` op is a 422 that changes nothing), and fails on demand:
503, no answer, or applied without an answer (the answer lost). The real
client against a real server that goes away: tests/reliability/test_outage_throughput.py.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import jsonpatch
import pytest

from resumable import _kube
from resumable._kube import QUICK_TRY, KubeStore
from resumable.errors import FencedError, StoreRefusedError, StoreUnavailableError
from resumable.kubeapi import api_error
from resumable.v1alpha1 import Checkpoint


class FakeApi:
    """One ResumableBatch; ``mode``: ``ok``, ``503``, ``timeout``, ``apply-timeout``, ``403``."""

    timeout = 10.0

    def __init__(self) -> None:
        cp = Checkpoint(attempt=1).model_dump(by_alias=True, exclude_none=True, mode="json")
        self.obj: dict[str, Any] = {
            "metadata": {"name": "b1", "namespace": "ns1", "uid": "u-1"},
            "status": {"checkpoint": cp, "progress": "0"},
        }
        self.mode = "ok"
        #: (method, seconds left before the request's ``until``) of each request.
        self.requests: list[tuple[str, float | None]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        until = kwargs.get("until")
        self.requests.append((method, None if until is None else until - time.monotonic()))
        if self.mode == "503":
            raise api_error(503, "ServiceUnavailable")
        if self.mode == "timeout":
            raise api_error(0, "ReadTimeoutError: read timed out")
        if method == "GET":
            return copy.deepcopy(self.obj)
        if self.mode == "403":
            raise api_error(403, 'resumablebatches.resumable.dev "b1" is forbidden')
        try:
            self.obj = jsonpatch.apply_patch(self.obj, kwargs["body"], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise api_error(422, f"the server rejected our request: {exc}") from exc
        if self.mode == "apply-timeout":
            raise api_error(0, "ReadTimeoutError: read timed out")  # applied, answer lost
        return copy.deepcopy(self.obj)

    @property
    def next_index(self) -> int:
        return int(self.obj["status"]["checkpoint"]["nextIndex"])

    def patches(self) -> int:
        return sum(1 for method, _ in self.requests if method == "PATCH")


def at(next_index: int, attempt: int = 1) -> Checkpoint:
    return Checkpoint(
        attempt=attempt,
        next_index=next_index,
        completed=f"0-{next_index - 1}",
        items_done=next_index,
    )


def quick(store: KubeStore, cp: Checkpoint, *, expect_next: int) -> None:
    store.try_checkpoint(cp, progress=str(cp.items_done), expect_attempt=1, expect_next=expect_next)


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def store(fake_api: FakeApi) -> KubeStore:
    return KubeStore(fake_api, "ns1", "b1")  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", ["503", "timeout"])
def test_a_quick_try_is_one_request_given_at_most_a_second(
    fake_api: FakeApi, store: KubeStore, fault: str
) -> None:
    fake_api.mode = fault
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="resumablebatch ns1/b1"):
        quick(store, at(3), expect_next=0)
    assert time.monotonic() - began < 0.5  # no backoff, no second request
    assert [method for method, _ in fake_api.requests] == ["PATCH"]
    left = fake_api.requests[0][1]
    assert left is not None
    assert QUICK_TRY - 0.1 < left <= QUICK_TRY


def test_a_patient_boundary_write_still_retries_until_its_deadline(
    fake_api: FakeApi, store: KubeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_kube, "BOUNDARY_DEADLINE", 0.6)
    fake_api.mode = "503"
    with pytest.raises(StoreUnavailableError):
        store.save_checkpoint(at(3), progress="3", expect_attempt=1, expect_next=0)
    assert fake_api.patches() > 1


def test_a_quick_try_that_landed_without_an_answer_does_not_fence_the_next_write(
    fake_api: FakeApi, store: KubeStore
) -> None:
    fake_api.mode = "apply-timeout"
    with pytest.raises(StoreUnavailableError):
        quick(store, at(4), expect_next=0)
    assert fake_api.next_index == 4  # it landed; the run was told it failed

    fake_api.mode = "ok"
    quick(store, at(6), expect_next=0)  # the run still expects 0: the server holds our 4
    assert fake_api.next_index == 6
    assert store.writes == 1
    # A writer that really is behind the server is still refused.
    with pytest.raises(FencedError, match="position moved to 6"):
        quick(store, at(7), expect_next=4)


def test_a_quick_try_is_fenced_by_a_newer_attempt_as_a_patient_write_is(
    fake_api: FakeApi, store: KubeStore
) -> None:
    fake_api.obj["status"]["checkpoint"]["attempt"] = 2  # the operator started attempt 2
    with pytest.raises(FencedError, match="attempt 1 was replaced by attempt 2"):
        quick(store, at(3), expect_next=0)
    assert fake_api.next_index == 0


def test_a_quick_try_refused_by_the_server_is_not_retried(
    fake_api: FakeApi, store: KubeStore
) -> None:
    fake_api.mode = "403"
    with pytest.raises(StoreRefusedError) as refused:
        quick(store, at(3), expect_next=0)
    assert refused.value.status == 403
    assert fake_api.patches() == 1
