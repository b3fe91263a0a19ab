"""spec.window on the real control plane: a nightly window closes on a running worker and the
next one resumes it.

The operator's controller runs in process with its real work queue (timers, workers)
and a clock the test sets (tests/clock.py): the batch is created eight seconds
before its window closes, and the night after is a jump of the clock, so a
nightly window opens and closes within seconds while the worker, the kubelet and
the API server run in real time. Nothing pokes the controller until it has
stopped the worker: it wakes at the window's end on its own (requeue_after).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import ApiError, KubeApi
from resumable_operator.controller import Controller
from scenarios import Scenario
from tests.clock import ShiftedClock
from tests.integration.harness import Batches, outputs_in
from tests.integration.test_operator import batch_manifest
from tests.waiting import wait_for

ITEMS = 40
WORK = Scenario(id="nightly", items=ITEMS, fault={}, retry={}, phase="Succeeded", restarts=0)


@contextlib.contextmanager
def controller_running(ctl: Controller) -> Iterator[None]:
    """The controller's queue and workers on an event loop of their own, as in the operator."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="controller-loop")
    thread.start()

    async def start() -> None:
        ctl.start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=5)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(ctl.stop(wait=10), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def items_done(batches: Batches, name: str) -> int:
    cp = (batches.get(name).get("status") or {}).get("checkpoint") or {}
    return int(cp.get("itemsDone", 0))


def phase(batches: Batches, name: str) -> str:
    return str((batches.get(name).get("status") or {}).get("phase", ""))


def pod_phase(batches: Batches, batch: str, pod: str) -> str:
    found = [p for p in batches.pods(batch) if p["metadata"]["name"] == pod]
    return str(found[0].get("status", {}).get("phase", "")) if found else "gone"


def test_the_window_closing_stops_the_worker_and_the_next_window_resumes_it(
    kubeconfig: Path,
    namespace: str,
    batches: Batches,
    kubelet: Any,
    kubectl: Any,
    tmp_path: Path,
) -> None:
    clock = ShiftedClock(datetime(2026, 12, 4, 5, 59, 52, tzinfo=UTC))  # 8 s before 06:00
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1, clock=clock)
    out = tmp_path / "out"
    body = batch_manifest(
        WORK, "nightly", out, delay=0.3, window={"schedule": "0 1 * * *", "duration": "5h"}
    )
    batches.create(body)
    with controller_running(ctl):
        ctl.enqueue(namespace, "nightly")  # what the watch's ADDED event does
        kubelet.wait_running(namespace, "nightly-1")
        wait_for(lambda: items_done(batches, "nightly") >= 3, what="3 items saved", timeout=30)
        # 06:00: the controller wakes on its own and stops the worker; it saves on SIGTERM.
        wait_for(lambda: phase(batches, "nightly") == "Waiting", what="Waiting", timeout=30)
        wait_for(
            lambda: pod_phase(batches, "nightly", "nightly-1") in ("Succeeded", "Failed", "gone"),
            what="nightly-1 to end",
            timeout=30,
        )
        stopped = batches.get("nightly")["status"]
        assert 3 <= stopped["checkpoint"]["itemsDone"] < ITEMS
        assert stopped["window"]["opensAt"] == "2026-12-05T01:00:00Z"
        assert (stopped["restarts"], stopped["disruptions"]) == (0, 0)
        table = kubectl("get", "rb", "nightly", "-n", namespace, check=True).stdout
        assert "Waiting" in table
        assert "2026-12-05T01:00:00Z" in table  # the Opens column
        # The next night, three seconds before the window opens; the controller looks
        # (as after a restart or a resync) and wakes at the opening on its own.
        clock.set(datetime(2026, 12, 5, 0, 59, 57, tzinfo=UTC))
        ctl.enqueue(namespace, "nightly")
        kubelet.wait_running(namespace, "nightly-2", timeout=30)

        def ended() -> bool:
            ctl.enqueue(namespace, "nightly")  # as the pod watch would
            return phase(batches, "nightly") in ("Succeeded", "Failed")

        wait_for(ended, what="the batch to end", timeout=60, every=0.5)
    status = batches.get("nightly")["status"]
    assert status["phase"] == "Succeeded"
    assert (status["restarts"], status["disruptions"]) == (0, 0)
    assert outputs_in(out) == list(range(ITEMS))  # every item, each once
    resumed_at = stopped["checkpoint"]["itemsDone"] + 1
    messages = [e["message"] for e in batches.events("nightly")]
    assert any(m.startswith("Window closed: stopping the worker") for m in messages), messages
    assert any(
        m.startswith("Resumed at item ") and m.endswith("after the window closed (attempt 2)")
        for m in messages
    ), messages
    assert f"resuming at item {resumed_at}/{ITEMS}" in kubelet.read_log(namespace, "nightly-2")
    # nightly-1 was deleted when the window closed (as a suspend deletes it): one more attempt.
    assert [p["metadata"]["name"] for p in batches.pods("nightly")] == ["nightly-2"]


@pytest.mark.parametrize(
    ("window", "says"),
    [
        (
            {"schedule": "0 1 * *", "duration": "5h"},
            "spec.window.schedule must be five cron fields",
        ),
        ({"schedule": "0 25 * * *", "duration": "5h"}, "hour 0-23"),
        (
            {"schedule": "@daily", "duration": "5h", "timeZone": "Mars/Olympus_Mons"},
            "spec.window.timeZone is not a time zone the API server knows",
        ),
        ({"schedule": "@daily", "duration": "5 hours"}, "spec.window.duration must be hours"),
        ({"schedule": "@daily", "duration": "169h"}, "at most 168h"),
        (
            {"schedule": "@daily", "duration": "1h", "stopBefore": "90m"},
            "spec.window.stopBefore must be shorter than spec.window.duration",
        ),
        (
            {"schedule": "@daily", "duration": "5h", "timeZone": "Europe Berlin"},
            "spec.window.timeZone must be an IANA time zone name",
        ),
    ],
)
def test_the_api_server_refuses_a_bad_window_saying_which_field(
    batches: Batches, tmp_path: Path, window: dict[str, Any], says: str
) -> None:
    body = batch_manifest(WORK, "refused", tmp_path / "out", window=window)
    with pytest.raises(ApiError) as refused:
        batches.create(body)
    assert refused.value.status == 422
    assert says in str(refused.value)


def test_a_recurring_batch_starts_a_new_run_at_the_next_opening_and_keeps_the_last_ones(
    kubeconfig: Path, namespace: str, batches: Batches, kubelet: Any, tmp_path: Path
) -> None:
    clock = ShiftedClock(datetime(2026, 12, 4, 1, 0, 5, tzinfo=UTC))  # inside the first window
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1, clock=clock)
    short = Scenario(id="daily", items=10, fault={}, retry={}, phase="Succeeded", restarts=0)
    window = {
        "schedule": "0 1 * * *",
        "duration": "5h",
        "recurrence": {"concurrencyPolicy": "Continue", "historyLimit": 1},
    }
    batches.create(batch_manifest(short, "daily", tmp_path / "out", runId="sum", window=window))

    def run_ended(run_id: str) -> bool:
        ctl.enqueue(namespace, "daily")  # as the pod watch would
        status = batches.get("daily").get("status") or {}
        return status.get("runId") == run_id and status.get("phase") == "Succeeded"

    with controller_running(ctl):
        wait_for(lambda: run_ended("sum-20261204-0100"), what="the first run", timeout=60)
        first = batches.get("daily")["status"]
        assert first["window"]["opensAt"] == "2026-12-05T01:00:00Z"  # the next run's
        clock.set(datetime(2026, 12, 5, 1, 0, 1, tzinfo=UTC))  # the next night
        wait_for(lambda: run_ended("sum-20261205-0100"), what="the second run", timeout=60)
    status = batches.get("daily")["status"]
    assert status["history"] == [
        {
            "runId": "sum-20261204-0100",
            "result": "Succeeded",
            "progress": "10/10",
            "restarts": 0,
            "disruptions": 0,
            "skippedItems": 0,
            "endedAt": first["completionTime"],
        }
    ]
    assert status["checkpoint"]["itemsDone"] == 10  # the second run did every item again
    labels = [p["metadata"]["labels"].get("resumable.dev/run-id") for p in batches.pods("daily")]
    assert labels[-1] == "sum-20261205-0100"
    messages = [e["message"] for e in batches.events("daily")]
    assert (
        "Scheduled run 'sum-20261205-0100' starts from item 1 (run 'sum-20261204-0100': "
        "Succeeded)" in messages
    )
