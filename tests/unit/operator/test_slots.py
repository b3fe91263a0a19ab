"""decide() for parallel workers (spec.parallelism > 1), table by table.

As in test_reconcile.py: a hand-built batch, the pods observed, decide() at a
fixed ``now``; the decided status fed back in models the executor's write, and
the workers' own writes are made with resumable.claims as the SDK makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resumable import claims
from resumable.ranges import IndexSet
from resumable.v1alpha1 import ResumableBatch, SkippedItem
from resumable_core import conditions as cond
from resumable_core import objects
from resumable_core.jsonpatch import PatchTestFailedError, apply_patch
from resumable_core.patches import dump_status, status_patch
from resumable_core.reconcile import Decision, PodView, decide

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}


def make_batch(
    *,
    total: int | None = 40,
    parallelism: int = 3,
    retry: dict[str, Any] | None = None,
    **spec: Any,
) -> ResumableBatch:
    body: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "worker", "command": ["work"]}]}},
        "parallelism": parallelism,
        "retry": retry or {"backoff": NO_BACKOFF},
        **spec,
    }
    if total is not None:
        body["totalItems"] = total
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": body,
        }
    )


def step(batch: ResumableBatch, pods: list[PodView], now: datetime = T0) -> Decision:
    """One decision, its status written back as the executor would."""
    decision = decide(batch, pods, now)
    batch.status = decision.status.model_copy(deep=True)
    return decision


def running(name: str, slot: int, attempt: int) -> PodView:
    return PodView(name, attempt, "Running", slot=slot)


def ended(pod: PodView, *, code: int, **kw: Any) -> PodView:
    return PodView(
        pod.name,
        pod.attempt,
        "Succeeded" if code == 0 else "Failed",
        exit_code=code,
        slot=pod.slot,
        **kw,
    )


def start_all(batch: ResumableBatch) -> list[PodView]:
    """Decide until every slot has its pod: one pod per decision."""
    pods: list[PodView] = []
    for _ in range(batch.spec.parallelism + 1):
        decision = step(batch, pods)
        plan = decision.create_pod
        if plan is None:
            break
        pods.append(running(plan.name, plan.slot or 0, plan.attempt))
    return pods


def test_one_pod_is_asked_for_per_decision_each_slot_named_and_told_its_slot() -> None:
    batch = make_batch(chunkSize=5)
    pods = start_all(batch)
    assert [p.name for p in pods] == ["b-w0-1", "b-w1-1", "b-w2-1"]
    assert [w.pod("b") for w in batch.status.workers] == ["b-w0-1", "b-w1-1", "b-w2-1"]
    assert batch.status.phase == "Running"
    plan = decide(make_batch(chunkSize=5), [], T0).create_pod
    assert plan is not None
    pod = objects.build_pod(batch, plan)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["RESUMABLE_WORKER_SLOT"] == "0"
    assert env["RESUMABLE_PARALLELISM"] == "3"
    assert env["RESUMABLE_CHUNK_SIZE"] == "5"
    assert env["RESUMABLE_ATTEMPT"] == "1"
    assert "RESUMABLE_START_INDEX" not in env  # a parallel worker claims; it has no start
    assert pod["metadata"]["labels"]["resumable.dev/slot"] == "0"
    assert objects.pod_view(pod).slot == 0


def test_a_failed_worker_is_replaced_alone_and_its_chunk_goes_back_to_the_pool() -> None:
    batch = make_batch()
    pods = start_all(batch)
    st = batch.status
    for slot, attempt in ((0, 1), (1, 1), (2, 1)):
        claims.claim_next(st, slot, attempt, total=40, size=5, what="b")
    claims.record(
        st, 1, 1, done=IndexSet.parse("5-6"), tokens=0, cost_usd=0, inflight=None, what="b"
    )
    pods[1] = ended(pods[1], code=137)
    decision = step(batch, pods)
    entry = batch.status.workers[1]
    assert decision.delete_pods == []  # nobody else is stopped
    # Ended (attempt 2 fences it), replaced at once (attempt 3, no backoff set).
    assert (entry.attempt, entry.claim, entry.done, entry.restarts) == (3, "", "5-6", 1)
    assert batch.status.restarts == 1
    assert decision.create_pod is not None
    assert decision.create_pod.name == "b-w1-3"
    assert decision.create_pod.slot == 1
    assert [w.pod("b") for w in batch.status.workers] == ["b-w0-1", "b-w1-3", "b-w2-1"]
    assert claims.free_chunk(batch.status, 40, 5) == (7, 9)  # what it had not committed
    assert any("Worker 1 (attempt 1) ended with exit 137" in e.message for e in decision.events)
    # How it ended is the batch's (latest) failure; the replacement's event says it.
    assert batch.status.last_failure == "worker 1: exit 137"
    assert batch.status.failed_at == "2025-03-01T12:00:00Z"
    assert any(
        e.message.startswith("Resumed worker 1 after exit 137 (attempt 3, pod b-w1-3)")
        for e in decision.events
    )


def test_a_slot_is_stored_without_its_pod_name_or_failure_text() -> None:
    """The pod name is derived from the batch's, slot and attempt; failures are the
    batch's: a 64-slot status of a batch with a 63-character name stays small."""
    batch = make_batch()
    pods = start_all(batch)
    pods[0] = ended(pods[0], code=137)
    step(batch, pods)
    stored = batch.status.model_dump(by_alias=True, exclude_none=True, mode="json")["workers"]
    assert stored[0] == {"slot": 0, "attempt": 3, "started": True, "done": "", "restarts": 1}
    assert stored[1] == {"slot": 1, "attempt": 1, "started": True, "done": ""}


def test_a_disrupted_worker_is_not_counted_and_restarts_without_backoff() -> None:
    batch = make_batch(retry={"backoff": {"initialSeconds": 30}})
    pods = start_all(batch)
    pods[2] = PodView(pods[2].name, 1, "Failed", disruption="Evicted", slot=2)
    decision = step(batch, pods)
    assert batch.status.restarts == 0
    assert batch.status.disruptions == 1
    assert decision.create_pod is not None
    assert decision.create_pod.name == "b-w2-3"


def test_a_counted_failure_waits_the_slots_own_backoff() -> None:
    batch = make_batch(retry={"backoff": {"initialSeconds": 10, "maxSeconds": 10}})
    pods = start_all(batch)
    pods[0] = ended(pods[0], code=1)
    decision = step(batch, pods)
    assert decision.create_pod is None
    assert batch.status.workers[0].retry_after
    assert decision.requeue_after is not None
    assert decision.requeue_after <= 10
    later = step(batch, pods, T0 + timedelta(seconds=11))
    assert later.create_pod is not None
    assert later.create_pod.name == "b-w0-3"


def test_the_restart_budget_is_the_batchs_and_ends_it_when_spent() -> None:
    batch = make_batch(retry={"maxRestarts": 1, "backoff": NO_BACKOFF})
    pods = start_all(batch)
    pods[0] = ended(pods[0], code=1)
    step(batch, pods)
    pods[1] = ended(pods[1], code=1)
    step(batch, pods)
    assert cond.is_true(batch.status.conditions, cond.FAILED)
    failed = cond.find(batch.status.conditions, cond.FAILED)
    assert failed is not None
    assert failed.reason == "MaxRestartsExceeded"
    assert "Worker 1" in failed.message
    assert ("b-w2-1", True) in step(batch, pods).delete_pods  # the others are stopped


def test_a_never_retry_exit_code_of_any_worker_fails_the_batch_and_stops_the_others() -> None:
    batch = make_batch(retry={"neverRetryExitCodes": [3], "backoff": NO_BACKOFF})
    pods = start_all(batch)
    pods[0] = ended(pods[0], code=3)
    step(batch, pods)
    assert cond.is_true(batch.status.conditions, cond.FAILED)
    decision = step(batch, pods)  # terminal: leftovers are stopped
    assert {name for name, _ in decision.delete_pods} == {"b-w1-1", "b-w2-1"}


def test_a_poison_item_is_skipped_after_careful_deaths_at_it() -> None:
    batch = make_batch(
        total=20, retry={"maxItemAttempts": 2, "maxRestarts": 10, "backoff": NO_BACKOFF}
    )
    pods = start_all(batch)
    st = batch.status
    claims.claim_next(st, 0, 1, total=20, size=5, what="b")  # items 0-4; item 3 kills
    claims.record(
        st, 0, 1, done=IndexSet.parse("0-2"), tokens=0, cost_usd=0, inflight=None, what="b"
    )
    pods[0] = ended(pods[0], code=137)
    decision = step(batch, pods)  # not placed exactly: counts no death, makes careful
    assert batch.status.stall is not None
    assert batch.status.stall.index == 3
    assert batch.status.stall.attempts == 0
    assert decision.create_pod is not None
    assert decision.create_pod.careful
    for _ in range(2):
        entry = batch.status.workers[0]
        attempt = entry.attempt
        pods.append(running(entry.pod("b"), 0, attempt))
        claims.fold(batch.status, batch.status.workers[0])
        claims.claim_next(batch.status, 0, attempt, total=20, size=5, what="b")
        claims.record(
            batch.status, 0, attempt, done=IndexSet(), tokens=0, cost_usd=0, inflight=3, what="b"
        )
        pods[-1] = ended(pods[-1], code=137)
        decision = step(batch, pods)
    assert [s.index for s in batch.status.skipped] == [3]
    assert batch.status.stall is None
    assert 3 not in IndexSet.parse(batch.status.workers[0].claim)


def test_the_batch_succeeds_once_the_pool_is_empty_and_every_worker_ended() -> None:
    batch = make_batch(total=10)
    pods = start_all(batch)
    st = batch.status
    for slot in range(3):
        while claims.claim_next(st, slot, 1, total=10, size=4, what="b") is not None:
            entry = st.workers[slot]
            claims.record(
                st,
                slot,
                1,
                done=IndexSet.parse(entry.claim),
                tokens=1,
                cost_usd=0,
                inflight=None,
                what="b",
            )
    pods[0] = ended(pods[0], code=0)
    pods[1] = ended(pods[1], code=0)
    step(batch, pods)
    assert not cond.is_true(batch.status.conditions, cond.SUCCEEDED)  # worker 2 runs on
    pods[2] = ended(pods[2], code=0)
    step(batch, pods)
    assert cond.is_true(batch.status.conditions, cond.SUCCEEDED)
    cp = batch.status.checkpoint
    assert (cp.finished, cp.completed, cp.items_done, batch.status.progress) == (
        True,
        "0-9",
        10,
        "10/10",
    )


def test_a_worker_exiting_0_with_its_chunk_unfinished_is_a_counted_failure() -> None:
    batch = make_batch()
    pods = start_all(batch)
    claims.claim_next(batch.status, 0, 1, total=40, size=5, what="b")
    pods[0] = ended(pods[0], code=0)
    decision = step(batch, pods)
    assert batch.status.restarts == 1
    assert decision.outcome is not None
    assert decision.outcome.kind == "not-finished"


def test_suspend_stops_every_worker_and_resume_starts_them_again() -> None:
    batch = make_batch()
    pods = start_all(batch)
    claims.claim_next(batch.status, 0, 1, total=40, size=5, what="b")
    batch.spec.suspend = True
    decision = step(batch, pods)
    assert sorted(name for name, graceful in decision.delete_pods if graceful) == [
        "b-w0-1",
        "b-w1-1",
        "b-w2-1",
    ]
    pods = [ended(p, code=143) for p in pods]
    step(batch, pods)
    assert batch.status.phase == "Suspended"
    assert not any(w.started for w in batch.status.workers)
    assert all(w.claim == "" for w in batch.status.workers)
    assert batch.status.restarts == 0
    batch.spec.suspend = False
    assert step(batch, pods).create_pod is not None


def test_a_rerun_fences_every_slot_and_starts_from_item_1() -> None:
    batch = make_batch()
    pods = start_all(batch)
    claims.claim_next(batch.status, 0, 1, total=40, size=5, what="b")
    batch.spec.run_id = "again"
    decision = step(batch, pods)
    assert [w.attempt for w in batch.status.workers] == [2, 2, 2]
    assert all(w.claim == "" for w in batch.status.workers)
    assert all(w.done == "" for w in batch.status.workers)
    assert {n for n, _ in decision.delete_pods} == {"b-w0-1", "b-w1-1", "b-w2-1"}


def test_retry_skipped_reopens_a_succeeded_batch_with_only_its_skipped_items() -> None:
    batch = make_batch(total=10, parallelism=1)
    batch.status.conditions = []
    step(batch, [])  # first sight
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 9
    batch.status.skipped = [SkippedItem(index=4, attempts=3)]
    batch.status.active_pod = ""
    for c in batch.status.conditions:
        if c.type == cond.SUCCEEDED:
            c.status = "True"
    batch.spec.retry_skipped = "once"
    decision = step(batch, [])
    cp = batch.status.checkpoint
    assert (cp.finished, cp.completed, batch.status.skipped) == (False, "0-3,5-9", [])
    assert decision.create_pod is not None
    assert decision.create_pod.start_index == 4
    again = step(batch, [])  # acted on once
    assert not any(e.reason == "RetrySkippedRequested" for e in again.events)


def test_a_slot_write_and_the_decisions_write_do_not_bury_each_other() -> None:
    batch = make_batch()
    start_all(batch)
    read = dump_status(batch.status)
    # The operator decides slot 0's end from ``read``...
    pods = [ended(running("b-w0-1", 0, 1), code=137), running("b-w1-1", 1, 1)]
    decision = decide(batch, [*pods, running("b-w2-1", 2, 1)], T0)
    patch = status_patch(read, dump_status(decision.status), fence_checkpoint=True)
    # ...and worker 1 writes its own slot before the operator's patch lands.
    stored = {"status": read}
    claims.claim_next(batch.status, 1, 1, total=40, size=5, what="b")
    stored["status"]["workers"][1] = dump_status(batch.status)["workers"][1]
    applied = apply_patch(stored, patch)  # slot 1 untouched by the operator's patch
    assert applied["status"]["workers"][1]["claim"] == "0-4"
    assert applied["status"]["workers"][0]["attempt"] == 3  # ended, and replaced
    # A write to slot 0 itself in between refuses the operator's patch.
    stored["status"]["workers"][0]["done"] = "0"
    with pytest.raises(PatchTestFailedError):  # not buried: decided again on fresh state
        apply_patch(stored, patch)


def test_raising_parallelism_stops_the_single_worker_then_the_workers_share_the_rest() -> None:
    batch = make_batch(parallelism=1)
    step(batch, [])  # attempt 1 of the one worker: pod b-1
    assert batch.status.active_pod == "b-1"
    batch.status.checkpoint.completed = "0-11"
    batch.status.checkpoint.next_index = 12
    batch.spec.parallelism = 3
    single = PodView("b-1", 1, "Running")
    decision = step(batch, [single])
    assert decision.delete_pods == [("b-1", True)]  # gracefully: it saves on SIGTERM
    assert decision.create_pod is None
    assert any(e.reason == "ParallelismChanged" for e in decision.events)
    decision = step(batch, [PodView("b-1", 1, "Failed", exit_code=143)])
    assert batch.status.active_pod == ""
    assert batch.status.restarts == 0  # stopped, not failed
    assert decision.create_pod is not None
    assert decision.create_pod.name == "b-w0-1"
    assert claims.free_chunk(batch.status, 40, 100) == (12, 39)


def test_lowering_parallelism_drains_the_last_slots_gracefully() -> None:
    batch = make_batch(parallelism=3)
    pods = start_all(batch)
    batch.spec.parallelism = 2
    decision = step(batch, pods)
    assert decision.delete_pods == [("b-w2-1", True)]
    assert len(batch.status.workers) == 3  # until its pod has ended
    pods[2] = ended(pods[2], code=143)
    step(batch, pods)
    assert [w.slot for w in batch.status.workers] == [0, 1]


def test_a_rerun_with_one_worker_drops_the_slots() -> None:
    batch = make_batch(parallelism=3)
    pods = start_all(batch)
    batch.spec.parallelism = 1
    batch.spec.run_id = "single"
    decision = step(batch, pods)
    assert batch.status.workers == []
    assert {n for n, _ in decision.delete_pods} == {"b-w0-1", "b-w1-1", "b-w2-1"}


def test_a_drained_slot_counts_no_restart_and_keeps_its_committed_items() -> None:
    batch = make_batch(parallelism=3)
    pods = start_all(batch)
    claims.claim_next(batch.status, 2, 1, total=40, size=5, what="b")
    claims.record(
        batch.status,
        2,
        1,
        done=IndexSet.parse("0-1"),
        tokens=3,
        cost_usd=0,
        inflight=None,
        what="b",
    )
    batch.spec.parallelism = 1
    decision = step(batch, pods)
    assert sorted(decision.delete_pods) == [("b-w1-1", True), ("b-w2-1", True)]
    pods = [pods[0], ended(pods[1], code=143), ended(pods[2], code=143)]
    step(batch, pods)
    assert batch.status.restarts == 0
    assert [w.slot for w in batch.status.workers] == [0, 1, 2]  # slot 2 holds work
    assert batch.status.workers[2].claim == ""  # its chunk is back in the pool
    assert claims.free_chunk(batch.status, 40, 100) == (2, 39)
