"""The controller's work queue: kopf's handlers feed it, workers drain it, one batch at a time.

kopf runs plain-function handlers in a thread pool, and reconciles run in
threads, while the queue, its sets and the timers belong to the event loop. These
tests call the handlers the way kopf does and hammer the queue from threads, and
check what the operator promises: a batch is never reconciled by two workers at
once, and a request for a reconcile is never lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any, cast

import pytest
from kopf._core.actions.invocation import invoke

from resumable.kubeapi import KubeApi
from resumable_operator import handlers
from resumable_operator.controller import Controller

pytestmark = pytest.mark.asyncio


class Recorder:
    """Stands in for the Controller in kopf's memo: notes the thread of each call."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def enqueue(self, namespace: str, name: str, **_: Any) -> None:
        self.threads.append(threading.get_ident())

    def observe_batch(self, event_type: str | None, body: dict[str, Any]) -> None:
        self.threads.append(threading.get_ident())

    def observe_pod(self, event_type: str | None, body: dict[str, Any]) -> None:
        self.threads.append(threading.get_ident())


async def test_kopf_calls_the_event_handlers_on_the_event_loop_thread() -> None:
    recorder = Recorder()
    pod = {"metadata": {"namespace": "ns", "name": "b-1", "labels": {"resumable.dev/batch": "b"}}}
    batch = {"metadata": {"namespace": "ns", "name": "b", "uid": "u"}}
    await invoke(
        handlers.pod_event,
        kwargs={"event": {"type": "ADDED"}, "body": pod, "memo": {"controller": recorder}},
    )
    await invoke(
        handlers.batch_event,
        kwargs={"event": {"type": "MODIFIED"}, "body": batch, "memo": {"controller": recorder}},
    )
    assert recorder.threads == [threading.get_ident()] * 2


class Tracked(Controller):
    """A Controller whose reconcile only records who runs it, and when, per batch."""

    def __init__(self) -> None:
        super().__init__(cast(KubeApi, None), workers=4)
        self.lock = threading.Lock()
        self.active: Counter[tuple[str, str]] = Counter()
        self.most: Counter[tuple[str, str]] = Counter()
        self.runs: Counter[tuple[str, str]] = Counter()
        self.last_start: dict[tuple[str, str], float] = {}

    def reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        with self.lock:
            self.active[key] += 1
            self.most[key] = max(self.most[key], self.active[key])
            self.runs[key] += 1
            self.last_start[key] = time.monotonic()
        time.sleep(0.002)
        with self.lock:
            self.active[key] -= 1
        return None


class YieldingSet(set[tuple[str, str]]):
    """A set whose membership test lets other threads run: check-then-act races show up."""

    def __contains__(self, item: object) -> bool:
        found = super().__contains__(item)
        time.sleep(0)
        return found


async def test_enqueue_from_many_threads_never_runs_two_reconciles_of_one_batch_at_once() -> None:
    ctl = Tracked()
    ctl.queue._queued = YieldingSet()
    ctl.queue._running = YieldingSet()
    ctl.start()
    keys = [("ns", "a"), ("ns", "b")]
    last_call: dict[tuple[str, str], float] = {}
    go = threading.Barrier(8)

    def hammer() -> None:
        go.wait()
        for i in range(200):
            key = keys[i % 2]
            ctl.enqueue(*key)
            with ctl.lock:
                last_call[key] = time.monotonic()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        await asyncio.sleep(0.01)

    def served() -> bool:
        return all(ctl.last_start.get(key, 0.0) > last_call[key] for key in keys)

    deadline = time.monotonic() + 10
    while not served() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await ctl.stop()
    assert dict(ctl.most) == {key: 1 for key in keys}  # never two at once
    assert served()  # each batch's last request got a reconcile that started after it


class Slow(Controller):
    """A Controller whose reconcile takes a while, recording when it ends."""

    def __init__(self) -> None:
        super().__init__(cast(KubeApi, None), workers=1)
        self.started = threading.Event()
        self.ended_at = 0.0

    def reconcile(self, namespace: str, name: str) -> float | None:
        self.started.set()
        time.sleep(0.3)
        self.ended_at = time.monotonic()
        return None


async def test_stop_waits_for_a_reconcile_already_running_before_it_returns() -> None:
    # A leader releases its Lease right after stop(): a reconcile of its still
    # writing then would overlap the next leader's.
    ctl = Slow()
    ctl.start()
    ctl.enqueue("ns", "a")
    while not ctl.started.is_set():
        await asyncio.sleep(0.005)
    await ctl.stop()
    returned = time.monotonic()
    assert 0 < ctl.ended_at <= returned
    assert ctl.in_flight() == 0


async def test_the_queue_depth_metric_counts_batches_waiting_for_a_worker() -> None:
    gate = threading.Event()

    class Blocked(Controller):
        def reconcile(self, namespace: str, name: str) -> float | None:
            gate.wait(5)
            return None

    ctl = Blocked(cast(KubeApi, None), workers=1)
    for index in range(5):
        ctl.enqueue("ns", f"b{index}")
    depth = ctl.metrics.registry.get_sample_value
    assert depth("resumable_reconcile_queue_depth") == 5
    ctl.start()
    await asyncio.sleep(0.05)  # one worker took b0 and waits in it
    assert depth("resumable_reconcile_queue_depth") == 4
    assert depth("resumable_reconciles_in_flight") == 1
    gate.set()
    for _ in range(200):
        if depth("resumable_reconcile_queue_depth") == 0:
            break
        await asyncio.sleep(0.01)
    assert depth("resumable_reconcile_queue_depth") == 0
    await ctl.stop()


def pod(phase: str | None, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": "ns",
        "name": "b-1",
        "labels": {"resumable.dev/batch": "b"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase} if phase else {}}


@pytest.mark.parametrize(
    ("event", "body", "queued"),
    [
        ("ADDED", pod(None), None),  # just created: its creator wrote the status
        ("MODIFIED", pod("Pending"), None),
        ("MODIFIED", pod("Running"), "normal"),  # the Progressing condition follows
        ("MODIFIED", pod("Failed"), "urgent"),  # a new attempt waits
        ("MODIFIED", pod("Succeeded"), "urgent"),
        ("MODIFIED", pod("Running", deleting=True), "urgent"),
        ("MODIFIED", pod("Pending", deleting=True), "urgent"),
        ("DELETED", pod("Running"), "urgent"),  # vanished while running: a disruption
        ("DELETED", pod("Pending"), "urgent"),
        ("DELETED", pod("Failed"), None),  # its end was acted on
        ("ADDED", pod("Failed"), "urgent"),  # an operator starting up sees it ended
    ],
)
async def test_pod_events_queue_their_batch_only_when_it_can_change_a_decision(
    event: str, body: dict[str, Any], queued: str | None
) -> None:
    ctl = Controller(cast(KubeApi, None), workers=1)
    ctl.observe_pod(event, body)
    q = ctl.queue
    found = "urgent" if ("ns", "b") in q._urgent else "normal" if ("ns", "b") in q._normal else None
    assert found == queued


async def test_an_urgent_batch_is_reconciled_before_batches_queued_earlier() -> None:
    order: list[str] = []

    class Recording(Controller):
        def reconcile(self, namespace: str, name: str) -> float | None:
            order.append(name)
            return None

    ctl = Recording(cast(KubeApi, None), workers=1)
    for name in ("a", "b", "c"):
        ctl.enqueue("ns", name)
    ctl.enqueue("ns", "failed", urgent=True)
    ctl.enqueue("ns", "c", urgent=True)  # queued already: moves up, not twice
    ctl.start()
    for _ in range(200):
        if len(order) == 4:
            break
        await asyncio.sleep(0.01)
    await ctl.stop()
    assert order == ["failed", "c", "a", "b"]
