"""`resumable run` keeps to spec.window with the operator's decisions: real worker processes,
a clock the test sets (tests/clock.py) so the window opens and closes within seconds."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from resumable import LocalStore
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_core.decision import EventPlan
from resumable_runner.runner import LocalRunner, RunResult
from scenarios import Scenario, manifest
from tests.clock import ShiftedClock
from tests.waiting import wait_for

ITEMS = 40
WORK = Scenario(id="window", items=ITEMS, fault={}, retry={}, phase="Succeeded", restarts=0)


def saved(state: Path) -> ResumableBatchStatus:
    return LocalStore(state).load() or ResumableBatchStatus()


def test_the_local_runner_waits_for_the_window_stops_at_its_end_and_resumes_in_the_next(
    tmp_path: Path,
) -> None:
    body = manifest(WORK, "nightly", delay=0.1)  # 4 s of work: the window closes midway
    body["spec"]["window"] = {"schedule": "0 1 * * *", "duration": "5h"}
    batch = ResumableBatch.model_validate(body)
    state = tmp_path / "state"
    clock = ShiftedClock(datetime(2026, 12, 4, 0, 59, 58, tzinfo=UTC))  # 2 s before it opens
    events: list[EventPlan] = []
    runner = LocalRunner(batch, state, clock=clock, on_event=events.append)
    ended: list[RunResult] = []
    thread = threading.Thread(target=lambda: ended.append(runner.run()), daemon=True)
    thread.start()
    try:
        wait_for(lambda: saved(state).phase == "Waiting", what="Waiting", timeout=10)
        assert runner.pods == {}  # no worker before the window opens
        wait_for(lambda: saved(state).checkpoint.items_done >= 8, what="8 items", timeout=20)
        clock.set(datetime(2026, 12, 4, 6, 0, tzinfo=UTC))  # the window closes
        wait_for(
            lambda: (
                saved(state).phase == "Waiting"
                and all(p.process.poll() is not None for p in runner.pods.values())
            ),
            what="the worker stopped, the batch Waiting",
            timeout=20,
        )
        stopped_at = saved(state).checkpoint.items_done
        assert 8 <= stopped_at < ITEMS
        clock.set(datetime(2026, 12, 5, 0, 59, 59, tzinfo=UTC))  # a second before the next
        thread.join(timeout=60)
    finally:
        runner.request_suspend()
        thread.join(timeout=30)
    (result,) = ended
    said = [e.message for e in events]
    assert result.phase == "Succeeded", said
    assert (result.status.restarts, result.status.disruptions) == (0, 0)
    assert "Outside its window: waiting at item 1/40; it opens at 2026-12-04T01:00:00Z" in said
    assert any(m.startswith("Window closed: stopping the worker") for m in said), said
    assert any(m.endswith("after the window closed (attempt 2)") for m in said), said
    outputs = sorted((state / "outputs").glob("*.json"))
    indices = [json.loads(p.read_text())["index"] for p in outputs]
    assert sorted(indices) == list(range(ITEMS))  # every item once
