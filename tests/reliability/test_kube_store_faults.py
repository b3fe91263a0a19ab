"""The SDK's Kubernetes store under API faults the real server can't produce on demand (kmock).

429 with Retry-After, 500/503, a response that never comes (client timeout),
an API server that stays away longer than a write's deadline, and a write that
landed although its answer was lost. Also how refusals read: a 422 from a
failed JSON-patch ``test`` op is a FencedError naming the attempts, a 404 a
ConfigError naming the batch.

The batch lives in :class:`BatchServer`, a few lines on kmock's
KubernetesScaffold that GET and JSON-patch one object the way kube-apiserver
does (a failed ``test`` op is a 422 and changes nothing). kmock's
KubernetesEmulator is not used for it: it applies a write to its store before
the reactions run (a write answered with an injected 503 still lands), and it
answers a failed ``test`` op with a 500, which a client rightly retries.
Faults are kmock reactions at a higher priority than the batch's.

Deadlines are shortened (resumable._kube.BOUNDARY_DEADLINE / FINAL_DEADLINE) so
every test runs in about a second. The store is synchronous: it runs in a
thread (asyncio.to_thread) while kmock answers on the test's event loop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonpatch
import kmock as km
import pytest
import pytest_asyncio

# Exported by kmock (not listed in its __all__): a response with its own status code.
from kmock import Response  # type: ignore[attr-defined]

import resumable
from resumable import _kube
from resumable._kube import KubeStore
from resumable._slots import KubeSlots, SlotStore
from resumable.errors import (
    ConfigError,
    FencedError,
    StoreRefusedError,
    StoreUnavailableError,
)
from resumable.kubeapi import KubeApi, batch_path
from resumable.v1alpha1 import Checkpoint, CheckpointPolicy
from tests.reliability.faults import k8s_status

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.kmock(cls=km.KubernetesScaffold),
    pytest.mark.timeout(60),
]

NS, NAME = "ns1", "b1"
STATUS_PATH = batch_path(NS, NAME, status=True)


class BatchServer:
    """One ResumableBatch served like kube-apiserver serves it: GET, and JSON patch of status.

    Every applied write is kept in ``history`` (the status after it). Replace or
    edit ``obj`` from the test to play the operator (e.g. a newer attempt).
    """

    def __init__(self, kmock: km.RawHandler, status: dict[str, Any] | None) -> None:
        self.obj: dict[str, Any] = {
            "apiVersion": "resumable.dev/v1alpha1",
            "kind": "ResumableBatch",
            "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "1"},
            "spec": {"template": {"spec": {"containers": [{"name": "worker"}]}}},
        }
        if status is not None:
            self.obj["status"] = status
        self.deleted = False
        self.history: list[dict[str, Any]] = []
        self.refused: list[list[dict[str, Any]]] = []
        # The SDK reads through the status subresource (the worker has no right on
        # the batch itself, docs/security.md); the server answers with the whole object.
        kmock["get", STATUS_PATH] << self._get
        kmock["patch", STATUS_PATH] << self._patch

    @property
    def status(self) -> dict[str, Any]:
        return copy.deepcopy(self.obj.get("status") or {})

    @property
    def checkpoint(self) -> dict[str, Any]:
        return dict(self.status.get("checkpoint") or {})

    def apply(self, ops: list[dict[str, Any]]) -> Response:
        """Apply a JSON patch as kube-apiserver does: all or nothing, 422 if it can't."""
        if self.deleted:
            return Response(status=404, payload=k8s_status(404, "NotFound", self._gone()))
        try:
            new = jsonpatch.apply_patch(self.obj, ops, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            self.refused.append(ops)
            message = f"the server rejected our request due to an error in our request: {exc}"
            return Response(status=422, payload=k8s_status(422, "Invalid", message))
        new["metadata"]["resourceVersion"] = str(int(new["metadata"]["resourceVersion"]) + 1)
        self.obj = new
        self.history.append(self.status)
        return Response(status=200, payload=copy.deepcopy(new))

    def _gone(self) -> str:
        return f'resumablebatches.resumable.dev "{NAME}" not found'

    def _get(self) -> Response:
        # Always a Response with its own status: kmock keeps the last one on the reaction.
        if self.deleted:
            return Response(status=404, payload=k8s_status(404, "NotFound", self._gone()))
        return Response(status=200, payload=copy.deepcopy(self.obj))

    def _patch(self, request: km.Request) -> Response:
        return self.apply(request.data)


def initial_status(attempt: int = 1) -> dict[str, Any]:
    """What the operator writes before it starts attempt N: the fencing token.

    The whole checkpoint, as the operator dumps it (kube-apiserver would fill in
    the CRD's defaults of a shorter one; this fake does no defaulting).
    """
    cp = Checkpoint(attempt=attempt).model_dump(by_alias=True, exclude_none=True, mode="json")
    return {"checkpoint": cp, "progress": "0/20", "restarts": 0}


@pytest.fixture(autouse=True)
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kube, "BOUNDARY_DEADLINE", 2.0)
    monkeypatch.setattr(_kube, "FINAL_DEADLINE", 3.0)


@pytest_asyncio.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    """Set at teardown so hung handlers end and the server shuts down at once."""
    event = asyncio.Event()
    yield event
    event.set()
    await asyncio.sleep(0.05)


@pytest.fixture
def batch(kmock: km.RawHandler) -> BatchServer:
    return BatchServer(kmock, initial_status())


@pytest.fixture
def store(kmock_api: KubeApi) -> KubeStore:
    return KubeStore(kmock_api, NS, NAME)


def checkpoint_at(next_index: int, *, attempt: int = 1, total: int = 20) -> Checkpoint:
    return Checkpoint(
        next_index=next_index,
        completed=f"0-{next_index - 1}" if next_index > 1 else ("0" if next_index else ""),
        attempt=attempt,
        items_done=next_index,
        total_items=total,
        context={"attempt": attempt, "workerId": f"test-{time.monotonic_ns()}"},
        updated_at="2025-01-01T00:00:00Z",
    )


def save(store: KubeStore, cp: Checkpoint, *, expect_next: int, final: bool = False) -> None:
    store.save_checkpoint(
        cp,
        progress=f"{cp.items_done}/{cp.total_items}",
        expect_attempt=cp.attempt,
        expect_next=expect_next,
        final=final,
    )


def patches(kmock: km.RawHandler) -> int:
    return len(kmock["patch", STATUS_PATH])


# --------------------------------------------------------------------------- retries


async def test_429_is_retried_after_the_retry_after_it_names(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    (
        kmock.override["patch", STATUS_PATH][:1]
        << 429
        << {"Retry-After": "1"}
        << k8s_status(429, "TooManyRequests", "Too many requests, please try again later.")
    )
    start = time.monotonic()
    await asyncio.to_thread(save, store, checkpoint_at(5), expect_next=0)
    elapsed = time.monotonic() - start
    assert elapsed >= 1.0  # the jittered backoff alone is at most 0.4 s here
    assert patches(kmock) == 2
    assert batch.checkpoint["nextIndex"] == 5
    assert batch.status["progress"] == "5/20"
    assert len(batch.history) == 1
    assert store.writes == 1


async def test_retry_after_beyond_the_deadline_defers_at_once_without_sleeping(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    (
        kmock.override["patch", STATUS_PATH]
        << 429
        << {"Retry-After": "30"}
        << k8s_status(429, "TooManyRequests")
    )
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"resumablebatch {NS}/{NAME}: 429"):
        await asyncio.to_thread(save, store, checkpoint_at(5), expect_next=0)
    assert time.monotonic() - start < 1.0  # it did not sleep 30 s past a 2 s deadline
    assert patches(kmock) == 1
    assert batch.checkpoint == initial_status()["checkpoint"]


async def test_500_and_503_are_retried_until_the_write_succeeds(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    (
        kmock.override["patch", STATUS_PATH][:1]
        << 500
        << k8s_status(500, "InternalError", "etcdserver: request timed out")
    )
    (
        kmock.override["patch", STATUS_PATH][1:2]
        << 503
        << k8s_status(
            503, "ServiceUnavailable", "the server is currently unable to handle the request"
        )
    )
    await asyncio.to_thread(save, store, checkpoint_at(7), expect_next=0)
    assert patches(kmock) == 3
    assert batch.checkpoint["nextIndex"] == 7
    assert len(batch.history) == 1  # written once, by the third request


async def test_a_hung_response_times_out_and_the_write_is_retried(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore, release: asyncio.Event
) -> None:
    async def hang() -> Response:
        await release.wait()  # never answers while the client waits
        return Response(status=504, payload=k8s_status(504, "Timeout"))

    kmock.override["patch", STATUS_PATH][:1] << hang
    start = time.monotonic()
    await asyncio.to_thread(save, store, checkpoint_at(3), expect_next=0)
    assert time.monotonic() - start >= 0.5  # the client's request timeout
    assert patches(kmock) == 2
    assert batch.checkpoint["nextIndex"] == 3
    assert len(batch.history) == 1


async def test_a_write_that_landed_but_whose_answer_was_lost_is_not_mistaken_for_fencing(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore, release: asyncio.Event
) -> None:
    # The server commits the write, then the answer never comes (a dropped
    # connection, a slow etcd): the retry's `test` of nextIndex now fails with
    # 422 because our own write moved it. That is success, not a newer owner.
    async def commit_then_hang(request: km.Request) -> Response:
        batch.apply(request.data)
        await release.wait()
        return Response(status=504, payload=k8s_status(504, "Timeout"))

    kmock.override["patch", STATUS_PATH][:1] << commit_then_hang
    await asyncio.to_thread(save, store, checkpoint_at(4), expect_next=0)
    assert batch.checkpoint["nextIndex"] == 4
    assert len(batch.refused) == 1  # the retry was refused by the server...
    assert store.writes == 1  # ...and counted as the write it was
    # The run goes on from there: the next write expects the position it saved.
    await asyncio.to_thread(save, store, checkpoint_at(6), expect_next=4)
    assert batch.checkpoint["nextIndex"] == 6


async def test_a_write_reported_failed_that_landed_does_not_fence_the_next_one(
    kmock: km.RawHandler,
    batch: BatchServer,
    store: KubeStore,
    release: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server commits a boundary write, but its answer is lost and the deadline
    # passes: the run is told the write failed, keeps the progress and still
    # expects the old position. Its next write must not read our own write as a
    # newer owner's.
    monkeypatch.setattr(_kube, "BOUNDARY_DEADLINE", 0.3)  # under the 0.5 s client timeout

    async def commit_then_hang(request: km.Request) -> Response:
        batch.apply(request.data)
        await release.wait()
        return Response(status=504, payload=k8s_status(504, "Timeout"))

    kmock.override["patch", STATUS_PATH][:1] << commit_then_hang
    with pytest.raises(StoreUnavailableError):
        await asyncio.to_thread(save, store, checkpoint_at(4), expect_next=0)
    assert batch.checkpoint["nextIndex"] == 4  # it landed all the same

    await asyncio.to_thread(save, store, checkpoint_at(6), expect_next=0)
    assert batch.checkpoint["nextIndex"] == 6
    assert [h["checkpoint"]["nextIndex"] for h in batch.history] == [4, 6]
    # A writer that really is behind the server is still refused.
    with pytest.raises(FencedError, match="position moved to 6"):
        await asyncio.to_thread(save, store, checkpoint_at(7), expect_next=4)


# ------------------------------------------------------------------ a whole Run


def make_run(store: KubeStore, root: Path, *, attempt: int = 1, items: int = 20) -> resumable.Run:
    settings = resumable.Settings(
        batch_name=NAME,
        namespace=NS,
        store="kube",
        directory=root,
        attempt=attempt,
        total_items=items,
        worker_id="worker-a",
        policy=CheckpointPolicy(every_items=1, min_interval_seconds=0),
        handle_signals=False,
    )
    return resumable.Run(
        settings, store, resumable.DirectoryOutputs(root / "outputs"),
        resumable.DirectoryOutputs(root / "steps"),
    )  # fmt: skip


def output_indices(root: Path) -> list[int]:
    return sorted(json.loads(p.read_text())["index"] for p in (root / "outputs").glob("*.json"))


async def test_an_outage_longer_than_the_deadline_loses_no_progress(
    kmock: km.RawHandler,
    batch: BatchServer,
    store: KubeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_kube, "BOUNDARY_DEADLINE", 0.3)
    down = threading.Event()
    kmock.override[down] << 503 << k8s_status(503, "ServiceUnavailable")
    seen: dict[str, Any] = {}

    def work() -> resumable.Summary:
        run = make_run(store, tmp_path)
        for item in run.items(list(range(20))):
            if item.index == 5:
                down.set()  # the API server goes away after item 5 is saved
            if item.index == 12:
                # Still down: items 5..11 were done and kept pending, none saved.
                seen["done_while_down"] = run.summary().done
                seen["saved_while_down"] = batch.checkpoint.get("nextIndex")
                seen["patches_while_down"] = patches(kmock)
                down.clear()  # back: the next try flushes everything pending
                time.sleep(max(0.0, run._coalescer.retry_at - time.monotonic()))  # its retry
            with item:
                item.output = {"doubled": item.value * 2}
        return run.summary()

    summary = await asyncio.to_thread(work)

    assert seen["done_while_down"] == 12  # the worker kept going
    assert seen["saved_while_down"] == 5  # the last position saved before the outage
    # Five writes landed, then one quick try failed: not one try per item.
    assert seen["patches_while_down"] == 6
    positions = [h["checkpoint"]["nextIndex"] for h in batch.history]
    # One write per item until the outage, then the first write after it covers
    # every item done meanwhile (13 = items 0..12), then one per item again.
    assert positions[:6] == [1, 2, 3, 4, 5, 13]
    assert batch.history[5]["checkpoint"]["completed"] == "0-12"
    final = batch.checkpoint
    assert final["finished"] is True
    assert final["itemsDone"] == 20
    assert batch.status["progress"] == "20/20"
    assert output_indices(tmp_path) == list(range(20))
    assert summary.done == 20
    assert summary.finished


async def test_the_final_write_waits_out_a_short_outage(
    kmock: km.RawHandler,
    batch: BatchServer,
    store: KubeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every write fails while the items run; the final write then keeps retrying
    # (within FINAL_DEADLINE) until the server is back, and saves everything.
    monkeypatch.setattr(_kube, "BOUNDARY_DEADLINE", 0.2)
    down = threading.Event()
    down.set()
    kmock.override["patch", STATUS_PATH][down] << 503 << k8s_status(503, "ServiceUnavailable")
    back = threading.Timer(1.0, down.clear)
    timings: dict[str, float] = {}

    def work() -> None:
        run = make_run(store, tmp_path, items=4)
        for item in run.items(list(range(4))):
            if item.index == 3:
                back.start()
                timings["last"] = time.monotonic()
            with item:
                item.output = item.value
        timings["end"] = time.monotonic()

    try:
        await asyncio.to_thread(work)
    finally:
        back.cancel()
    assert timings["end"] - timings["last"] >= 1.0  # it waited for the server
    assert batch.history[0]["checkpoint"]["finished"] is True  # the only write
    assert batch.checkpoint["itemsDone"] == 4
    assert batch.checkpoint["completed"] == ""
    assert patches(kmock) > 2  # item 0's try, then the final write's, until one landed
    assert output_indices(tmp_path) == [0, 1, 2, 3]


# ------------------------------------------------------------- a parallel worker


async def test_a_claim_that_landed_with_its_answer_lost_counts_the_workers_tokens_once(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore, release: asyncio.Event
) -> None:
    # The claim folds the worker's tokens into the checkpoint. It lands, its answer
    # is lost, the resend is refused (the checkpoint moved: the claim's own bump),
    # and the worker reads again: it must find its claim there and not fold again.
    status = initial_status()
    status["workers"] = [{"slot": 0, "attempt": 1, "started": True, "done": ""}]
    batch.obj["status"] = status
    slots = SlotStore(KubeSlots(store), slot=0, parallelism=2, chunk_size=5)
    await asyncio.to_thread(slots.claim, 1)
    nothing = Checkpoint(attempt=1, total_items=20)
    assert await asyncio.to_thread(slots.claim_chunk, nothing, 20) == (0, 4)

    async def commit_then_hang(request: km.Request) -> Response:
        batch.apply(request.data)
        await release.wait()
        return Response(status=504, payload=k8s_status(504, "Timeout"))

    kmock.override["patch", STATUS_PATH][1:2] << commit_then_hang
    done = Checkpoint(attempt=1, completed="0-4", tokens=500, cost_usd=0.05, total_items=20)
    chunk = await asyncio.to_thread(slots.claim_chunk, done, 20)
    assert chunk == (5, 9)
    assert len(batch.refused) == 1  # the resend, refused by the server
    cp, worker = batch.checkpoint, batch.status["workers"][0]
    assert (cp["completed"], cp["tokens"], cp["costUsd"]) == ("0-4", 500, 0.05)
    assert cp["claims"] == 2  # the first claim and this one, not a third
    assert (worker["claim"], worker["done"], worker.get("tokens", 0)) == ("5-9", "", 0)
    # Its next claim folds only what it did since.
    more = Checkpoint(attempt=1, completed="0-9", tokens=800, cost_usd=0.08, total_items=20)
    assert await asyncio.to_thread(slots.claim_chunk, more, 20) == (10, 14)
    assert (batch.checkpoint["tokens"], batch.checkpoint["completed"]) == (800, "0-9")


async def test_a_claim_that_keeps_losing_the_race_backs_off_longer_each_time(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    # 64 workers claiming at once must not send refused writes in a tight loop:
    # each loss in a row doubles the longest wait (the longest is taken here).
    batch.obj["status"]["workers"] = [{"slot": 0, "attempt": 1, "started": True, "done": ""}]
    waits: list[float] = []
    slots = SlotStore(
        KubeSlots(store, sleep=waits.append, jitter=lambda longest: longest),
        slot=0,
        parallelism=2,
        chunk_size=5,
    )
    await asyncio.to_thread(slots.claim, 1)
    kmock.override["patch", STATUS_PATH][:6] << 409 << k8s_status(409, "Conflict")
    nothing = Checkpoint(attempt=1, total_items=20)
    assert await asyncio.to_thread(slots.claim_chunk, nothing, 20) == (0, 4)
    assert waits == [0.02, 0.04, 0.08, 0.16, 0.32, 0.5]
    assert batch.checkpoint["claims"] == 1


# -------------------------------------------------------------------- refusals


async def test_a_failed_test_op_is_a_fenced_error_naming_both_attempts(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore, tmp_path: Path
) -> None:
    def work() -> None:
        run = make_run(store, tmp_path)
        for item in run.items(list(range(20))):
            if item.index == 3:
                # The operator declared attempt 1 dead and started attempt 2.
                batch.obj["status"]["checkpoint"]["attempt"] = 2
            with item:
                item.output = item.value

    with pytest.raises(FencedError) as exc:
        await asyncio.to_thread(work)
    message = str(exc.value)
    assert f"resumablebatch {NS}/{NAME}" in message
    assert "attempt 1 was replaced by attempt 2" in message
    assert "stops without writing" in message
    # The server refused it (422) and nothing after item 2 was written.
    assert len(batch.refused) == 1
    assert batch.checkpoint["attempt"] == 2
    assert batch.checkpoint["nextIndex"] == 3
    assert any(op["op"] == "test" and op["value"] == 1 for op in batch.refused[0])


async def test_a_missing_batch_is_a_config_error_naming_it(
    kmock: km.RawHandler, store: KubeStore, tmp_path: Path
) -> None:
    batch = BatchServer(kmock, initial_status())
    batch.deleted = True
    with pytest.raises(ConfigError, match=f"resumablebatch {NS}/{NAME} does not exist"):
        await asyncio.to_thread(make_run, store, tmp_path)
    assert len(kmock["get", STATUS_PATH]) == 1  # a 404 is not retried


async def test_a_batch_deleted_mid_run_is_a_config_error_naming_it(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    batch.deleted = True
    with pytest.raises(ConfigError, match=f"resumablebatch {NS}/{NAME} does not exist"):
        await asyncio.to_thread(save, store, checkpoint_at(2), expect_next=0)
    assert patches(kmock) == 1


# ----------------------------------------------------- a restarted API server's RBAC

#: What a restarted kube-apiserver answers while its RBAC caches lack the worker's Role
#: (seen by tests/reliability/test_apiserver_outage.py on the real one).
NOT_SYNCED = (
    'resumablebatches.resumable.dev "b1" is forbidden: User "system:serviceaccount:ns1:'
    'b1-worker" cannot patch resource "resumablebatches/status" in API group '
    '"resumable.dev" in the namespace "ns1": RBAC: role.rbac.authorization.k8s.io '
    '"b1-worker" not found'
)


async def test_a_403_just_after_the_server_was_away_is_tried_again_until_the_write_lands(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    kmock.override["patch", STATUS_PATH][:1] << 503 << k8s_status(503, "ServiceUnavailable")
    with pytest.raises(StoreUnavailableError):
        await asyncio.to_thread(
            store.try_checkpoint, checkpoint_at(4), progress="4/20", expect_attempt=1,
            expect_next=0,
        )  # fmt: skip
    kmock.override["patch", STATUS_PATH][1:3] << 403 << k8s_status(403, "Forbidden", NOT_SYNCED)
    await asyncio.to_thread(save, store, checkpoint_at(9), expect_next=0)
    assert patches(kmock) == 4  # the 503, two 403s, and the write that landed
    assert batch.checkpoint["nextIndex"] == 9


async def test_a_403_with_no_write_pending_is_a_refusal_at_once(
    kmock: km.RawHandler, batch: BatchServer, store: KubeStore
) -> None:
    kmock.override["patch", STATUS_PATH] << 403 << k8s_status(403, "Forbidden", NOT_SYNCED)
    with pytest.raises(StoreRefusedError, match=r"RBAC: role\.rbac\.authorization\.k8s\.io"):
        await asyncio.to_thread(save, store, checkpoint_at(9), expect_next=0)
    assert patches(kmock) == 1
    assert batch.checkpoint == initial_status()["checkpoint"]
