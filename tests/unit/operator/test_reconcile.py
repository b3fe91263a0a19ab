"""reconcile.decide(): the operator's (and the local runner's) decisions, table by table.

Every test hand-builds a ResumableBatch and the PodViews observed, calls decide()
at a fixed `now`, and checks the decision: the new status, the pod to create,
the pods to delete, the events. Feeding a decision's status back in (``settle``)
models the executor having written it, so sequences play out as they would in a
cluster, without one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resumable.v1alpha1 import Condition, ResumableBatch, SkippedItem, Stall
from resumable_core import conditions as cond
from resumable_core import objects
from resumable_core.jsonpatch import PatchTestFailedError, apply_patch
from resumable_core.progress import resume_index
from resumable_core.reconcile import Decision, PodCreate, PodView, decide
from resumable_core.times import format_precise_time, format_time

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}


def make_batch(
    *, total: int | None = 50, retry: dict[str, Any] | None = None, **spec: Any
) -> ResumableBatch:
    body: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "worker", "command": ["work"]}]}},
        "retry": retry or {},
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


def settle(batch: ResumableBatch, decision: Decision) -> Decision:
    """The executor wrote the decided status: the next decision reads it."""
    batch.status = decision.status.model_copy(deep=True)
    return decision


def started(batch: ResumableBatch) -> ResumableBatch:
    """The batch after first sight: attempt 1 (pod b-1) created."""
    d = settle(batch, decide(batch, [], T0))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-1"
    return batch


def saved(
    batch: ResumableBatch,
    done: int,
    *,
    inflight: int | None = None,
    error: str = "",
    error_index: int | None = None,
) -> None:
    """The running worker (the current attempt) checkpointed items 0..done-1."""
    cp = batch.status.checkpoint
    cp.next_index = done
    cp.completed = f"0-{done - 1}" if done > 1 else ("0" if done == 1 else "")
    cp.items_done = done
    cp.context = {"attempt": cp.attempt}
    cp.inflight = inflight
    cp.last_error = error
    cp.last_error_index = error_index


def running(name: str = "b-1", attempt: int = 1, **kw: Any) -> PodView:
    return PodView(name, attempt, "Running", **kw)


def failed(
    name: str = "b-1", attempt: int = 1, code: int = 137, reason: str = "Error", **kw: Any
) -> PodView:
    return PodView(name, attempt, "Failed", exit_code=code, reason=reason, **kw)


def succeeded(name: str = "b-1", attempt: int = 1) -> PodView:
    return PodView(name, attempt, "Succeeded", exit_code=0, reason="Completed")


def conditions(decision: Decision) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in decision.status.conditions}


def messages(decision: Decision) -> list[str]:
    return [e.message for e in decision.events]


def assert_no_op(batch: ResumableBatch, pods: list[PodView], now: datetime) -> None:
    """Deciding again on the decided status changes nothing and creates nothing."""
    again = decide(batch, pods, now)
    assert again.status_changed is False
    assert again.create_pod is None
    assert again.delete_pods == []
    assert again.events == []


# ------------------------------------------------------------------ first sight


def test_first_sight_sets_all_four_conditions_and_creates_pod_1_at_item_0() -> None:
    batch = make_batch()
    d = decide(batch, [], T0)

    assert d.status_changed
    assert d.bump_attempt
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.attempt, d.create_pod.start_index) == ("b-1", 1, 0)
    assert d.create_pod.total_items == 50
    assert d.create_pod.careful is False
    assert d.status.checkpoint.attempt == 1  # the fencing token, written before the pod exists
    assert d.status.active_pod == "b-1"
    assert conditions(d) == {
        "Progressing": ("True", cond.REASON_POD_CREATED),
        "Suspended": ("False", cond.REASON_NOT_SUSPENDED),
        "Succeeded": ("Unknown", cond.REASON_RECONCILING),
        "Failed": ("False", cond.REASON_RECONCILING),
    }
    assert all(c.observed_generation == 1 for c in d.status.conditions)
    assert d.status.start_time == format_time(T0)
    assert d.status.observed_generation == 1
    assert d.status.phase == "Running"
    assert d.status.progress == "0/50"
    assert [e.reason for e in d.events] == ["Accepted", "Started"]
    assert "Started at item 1/50 (attempt 1, pod b-1)" in messages(d)


def test_first_sight_without_total_items_shows_an_unknown_total() -> None:
    d = decide(make_batch(total=None), [], T0)
    assert d.create_pod is not None
    assert d.create_pod.total_items is None
    assert "Started at item 1/? (attempt 1, pod b-1)" in messages(d)
    assert "Batch accepted; the worker counts the items" in messages(d)  # not "0 items"
    assert d.status.progress == "0"


# ------------------------------------------------------------- idempotence


def test_running_pod_second_identical_decision_changes_nothing() -> None:
    batch = started(make_batch())
    first = settle(batch, decide(batch, [running()], T0 + timedelta(seconds=5)))
    assert first.create_pod is None
    assert first.delete_pods == []
    assert conditions(first)["Progressing"] == ("True", cond.REASON_RUNNING)
    assert first.requeue_after is not None  # looked at again periodically
    assert_no_op(batch, [running()], T0 + timedelta(seconds=5))
    assert_no_op(batch, [running()], T0 + timedelta(minutes=10))  # time alone changes nothing


def test_pending_pod_right_after_creation_is_waited_for() -> None:
    batch = started(make_batch())
    assert_no_op(batch, [PodView("b-1", 1, "Pending")], T0)


# -------------------------------------------------------- failure and backoff


def test_exit_137_counts_a_restart_and_backs_off_before_resuming_at_the_checkpoint() -> None:
    batch = started(make_batch(retry={"maxRestarts": 3}))  # default backoff: 2s, x2
    saved(batch, 20)
    died = T0 + timedelta(seconds=30)

    d = settle(batch, decide(batch, [failed()], died))
    assert d.status.restarts == 1
    assert d.status.disruptions == 0
    assert d.create_pod is None  # not before the backoff
    assert d.status.retry_after == format_precise_time(died + timedelta(seconds=2))
    assert d.status.active_pod == ""
    assert d.status.phase == "BackingOff"
    assert d.status.last_failure == "exit 137"
    assert d.requeue_after == pytest.approx(2.0)
    assert conditions(d)["Progressing"] == ("True", cond.REASON_BACKOFF)
    assert "Attempt 1 ended with exit 137; restart 1/3 in 2s" in messages(d)
    assert d.outcome is not None
    assert d.outcome.kind == "failed"

    # Still inside the backoff: nothing happens, the same status stands.
    assert_no_op(batch, [failed()], died + timedelta(seconds=1))

    # Past retry_after: attempt 2 starts at the checkpoint's next index.
    d = settle(batch, decide(batch, [failed()], died + timedelta(seconds=3)))
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.attempt, d.create_pod.start_index) == ("b-2", 2, 20)
    assert d.bump_attempt
    assert d.status.checkpoint.attempt == 2
    assert d.status.active_pod == "b-2"
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in messages(d)
    assert conditions(d)["Progressing"] == ("True", cond.REASON_RESUMED)
    assert d.resumed_after_seconds == pytest.approx(3.0)
    assert d.status.restarts == 1  # starting the attempt does not count again


def test_backoff_grows_with_each_restart() -> None:
    batch = started(
        make_batch(retry={"backoff": {"initialSeconds": 2, "factor": 3, "maxSeconds": 10}})
    )
    now = T0
    delays = []
    for attempt in range(1, 5):
        pods = [failed(f"b-{attempt}", attempt)]
        d = settle(batch, decide(batch, pods, now))
        delays.append(d.requeue_after)
        now = now + timedelta(seconds=60)
        d = settle(batch, decide(batch, pods, now))
        assert d.create_pod is not None
        assert d.create_pod.attempt == attempt + 1
    assert delays == [2.0, 6.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("initial", "said"), [(0.25, "in 0.25s"), (1.0, "in 1s"), (1.5, "in 1.5s"), (4.0, "in 4s")]
)
def test_the_next_attempt_waits_exactly_the_announced_backoff_even_below_a_second(
    initial: float, said: str
) -> None:
    batch = started(make_batch(retry={"backoff": {"initialSeconds": initial}}))
    saved(batch, 5)
    # A failure seen at a moment with a fraction of a second, as the real clock gives.
    died = T0 + timedelta(seconds=30, microseconds=750_000)
    d = settle(batch, decide(batch, [failed()], died))
    assert any(m.endswith(said) for m in messages(d)), messages(d)
    assert d.requeue_after == pytest.approx(initial)
    due = died + timedelta(seconds=initial)
    # A microsecond early: still backing off, and the wait left is what remains.
    early = decide(batch, [failed()], due - timedelta(microseconds=1))
    assert early.create_pod is None
    assert early.status.phase == "BackingOff"
    assert early.requeue_after is not None
    assert early.requeue_after <= max(0.05, 1e-6)
    # Due: the next attempt starts.
    d = decide(batch, [failed()], due)
    assert d.create_pod is not None
    assert d.create_pod.attempt == 2


def test_oom_killed_is_named_in_the_resume_event() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 7)
    d = decide(batch, [failed(reason="OOMKilled")], T0)
    assert "Resumed at item 8/50 after OOMKilled (exit 137) (attempt 2)" in messages(d)
    assert d.status.restarts == 1


def test_a_worker_killed_after_saving_its_last_item_is_resumed_to_finish_not_at_item_51() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 50)  # every item saved; killed before it could mark the batch finished
    d = decide(batch, [failed()], T0)
    assert d.create_pod is not None
    assert d.create_pod.start_index == 50
    assert "Resumed to finish, all 50 items saved, after exit 137 (attempt 2)" in messages(d)


@pytest.mark.parametrize(
    "pod",
    [
        failed(disruption="EvictionByEvictionAPI"),
        failed(disruption="PreemptionByScheduler"),
        PodView("b-1", 1, "Failed", disruption="NodeLost"),
    ],
    ids=["evicted", "preempted", "node-lost"],
)
def test_disruption_is_not_counted_and_resumes_at_once(pod: PodView) -> None:
    batch = started(make_batch(retry={"maxRestarts": 0}))  # no restarts allowed at all
    saved(batch, 12)
    d = decide(batch, [pod], T0)
    assert d.status.restarts == 0
    assert d.status.disruptions == 1
    assert d.create_pod is not None
    assert d.create_pod.start_index == 12
    assert d.status.retry_after == ""
    assert d.outcome is not None
    assert d.outcome.kind == "disrupted"
    assert any("not counted against maxRestarts" in m for m in messages(d))
    assert conditions(d)["Failed"][0] == "False"


@pytest.mark.parametrize(("code", "fails"), [(3, True), (4, False), (137, False)])
def test_never_retry_exit_code_fails_at_once_other_codes_restart(code: int, fails: bool) -> None:
    batch = started(make_batch(retry={"neverRetryExitCodes": [3, 42], "backoff": NO_BACKOFF}))
    saved(batch, 5)
    d = settle(batch, decide(batch, [failed(code=code)], T0))
    if fails:
        assert d.create_pod is None
        assert conditions(d)["Failed"] == ("True", cond.REASON_NEVER_RETRY)
        assert conditions(d)["Succeeded"] == ("False", cond.REASON_NEVER_RETRY)
        assert conditions(d)["Progressing"][0] == "False"
        assert d.status.phase == "Failed"
        assert d.status.restarts == 0
        assert d.status.completion_time == format_time(T0)
        assert_no_op(batch, [failed(code=code)], T0 + timedelta(minutes=5))  # and stays failed
    else:
        assert d.create_pod is not None
        assert d.status.restarts == 1
        assert conditions(d)["Failed"][0] == "False"


def test_max_restarts_exhausted_fails_with_the_reason_and_no_more_pods() -> None:
    batch = started(
        make_batch(retry={"maxRestarts": 2, "maxItemAttempts": 100, "backoff": NO_BACKOFF})
    )
    pods: list[PodView] = []
    for attempt in (1, 2):
        pods.append(failed(f"b-{attempt}", attempt, code=1))
        d = settle(batch, decide(batch, pods, T0))
        assert d.create_pod is not None
        assert d.status.restarts == attempt
    pods.append(failed("b-3", 3, code=1))
    d = settle(batch, decide(batch, pods, T0))
    assert d.create_pod is None
    assert d.status.restarts == 2
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    assert conditions(d)["Succeeded"] == ("False", cond.REASON_MAX_RESTARTS)
    assert conditions(d)["Progressing"] == ("False", cond.REASON_MAX_RESTARTS)
    assert d.status.phase == "Failed"
    assert any("maxRestarts (2) exhausted" in m for m in messages(d))
    assert_no_op(batch, pods, T0 + timedelta(hours=1))


def exhausted(max_restarts: int = 2) -> tuple[ResumableBatch, list[PodView]]:
    """A batch Failed with MaxRestartsExceeded after saving items 0..9, and its pods."""
    batch = started(
        make_batch(
            retry={"maxRestarts": max_restarts, "maxItemAttempts": 100, "backoff": NO_BACKOFF}
        )
    )
    saved(batch, 10)
    pods: list[PodView] = []
    for attempt in range(1, max_restarts + 2):
        pods.append(failed(f"b-{attempt}", attempt, code=1))
        settle(batch, decide(batch, pods, T0))
    assert conditions(Decision(status=batch.status))["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    return batch, pods


def test_raising_max_restarts_of_a_failed_batch_goes_on_from_its_checkpoint() -> None:
    batch, pods = exhausted(max_restarts=2)
    batch.spec.retry.max_restarts = 5
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=5)))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-4"
    assert d.create_pod.start_index == 10  # the work done stays done
    assert conditions(d)["Failed"] == ("False", cond.REASON_RESTARTS_RAISED)
    assert conditions(d)["Succeeded"][0] == "Unknown"
    assert d.status.phase == "Running"
    assert d.status.restarts == 3  # b-4 is the restart after b-3's failure: counted
    assert d.status.completion_time == ""
    assert any("maxRestarts raised to 5 (2 used): going on from item 11" in m for m in messages(d))
    assert any("Resumed at item 11/50" in m for m in messages(d))
    # It fails again once the new budget is used up: 5 - 2 = 3 more pods (b-4..b-6).
    for attempt in range(4, 6):
        pods.append(failed(f"b-{attempt}", attempt, code=1))
        d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=5)))
        assert d.create_pod is not None, attempt
    pods.append(failed("b-6", 6, code=1))
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=5)))
    assert d.status.restarts == 5  # b-2..b-6: every pod started after a counted failure
    assert d.create_pod is None
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    assert any("maxRestarts (5) exhausted" in m for m in messages(d))


def test_raising_max_restarts_by_one_allows_exactly_one_more_restart_and_counts_it() -> None:
    batch, pods = exhausted(max_restarts=2)  # b-1, b-2, b-3 failed
    assert batch.status.restarts == 2
    batch.spec.retry.max_restarts = 3
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=5)))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-4"
    assert d.status.restarts == 3  # b-2, b-3, b-4 started after counted failures
    pods.append(failed("b-4", 4, code=1))
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=6)))
    assert d.create_pod is None  # no b-5: the raise by one bought exactly one restart
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    assert d.status.restarts == 3
    assert any("maxRestarts (3) exhausted" in m for m in messages(d))


def test_a_failed_batch_stays_failed_while_max_restarts_is_not_above_the_used_ones() -> None:
    batch, pods = exhausted(max_restarts=2)
    batch.spec.retry.max_restarts = 2
    assert_no_op(batch, pods, T0 + timedelta(hours=1))
    batch.spec.retry.max_restarts = 1  # lowered: still nothing to do
    assert_no_op(batch, pods, T0 + timedelta(hours=1))


def test_a_batch_failed_by_a_refused_pod_tries_again_from_its_checkpoint_once_edited() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 7)
    d = settle(batch, decide(batch, [failed(code=1)], T0))
    assert d.create_pod is not None
    # The API server refused the next pod as invalid (test_pod_create.py).
    refused = PodCreate(d.create_pod.name, d.create_pod.attempt, "refused", "pods is invalid")
    settle(batch, decide(batch, [failed(code=1)], T0, create=refused))
    assert batch.status.phase == "Failed"
    assert_no_op(batch, [failed(code=1)], T0)  # unchanged spec: stays failed
    batch.spec.template.spec.containers[0].image = "worker:fixed"  # the template was fixed
    batch.metadata.generation = 2
    d = decide(batch, [failed(code=1)], T0)
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert d.create_pod is not None
    assert d.create_pod.start_index == 7
    assert "The spec changed: creating the worker pod again" in messages(d)
    assert d.status.restarts == 1  # the refused attempt never ran: nothing more to count


def test_raising_max_restarts_does_not_reopen_a_never_retry_failure() -> None:
    batch = started(make_batch(retry={"neverRetryExitCodes": [3], "backoff": NO_BACKOFF}))
    pods = [failed(code=3)]
    d = settle(batch, decide(batch, pods, T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_NEVER_RETRY)
    batch.spec.retry.max_restarts = 50
    assert_no_op(batch, pods, T0 + timedelta(hours=1))


def never_retried() -> tuple[ResumableBatch, list[PodView]]:
    """A batch Failed with NeverRetryExitCode (exit 3) after saving items 0..5."""
    batch = started(
        make_batch(retry={"maxRestarts": 3, "neverRetryExitCodes": [3], "backoff": NO_BACKOFF})
    )
    saved(batch, 6)
    pods = [failed(code=3)]
    d = settle(batch, decide(batch, pods, T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_NEVER_RETRY)
    return batch, pods


def test_a_batch_failed_by_a_never_retry_exit_code_goes_on_from_its_checkpoint_once_edited() -> (
    None
):
    batch, pods = never_retried()
    assert_no_op(batch, pods, T0 + timedelta(minutes=5))  # unchanged spec: stays failed
    batch.spec.retry.never_retry_exit_codes = []  # the user edits the spec
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=5)))
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert conditions(d)["Succeeded"] == ("Unknown", cond.REASON_SPEC_CHANGED)
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.start_index) == ("b-2", 6)  # not from item 1
    assert d.status.restarts == 1  # b-2 starts after b-1's counted failure
    assert d.status.completion_time == ""
    assert d.status.phase == "Running"
    changed = [e for e in d.events if e.reason == cond.REASON_SPEC_CHANGED]
    assert [e.message for e in changed] == [
        "The spec changed since the batch failed (NeverRetryExitCode): going on from item 7, "
        "restart 1/3"
    ]
    assert "Resumed at item 7/50 after exit 3 (attempt 2)" in messages(d)
    again = decide(batch, [*pods, running("b-2", 2)], T0 + timedelta(minutes=6))
    assert (again.create_pod, again.events) == (None, [])  # reopened once, not per pass


def test_a_new_run_id_on_a_never_retry_failure_is_a_clean_rerun_not_a_resume() -> None:
    batch, pods = never_retried()
    batch.spec.run_id = "again"
    batch.metadata.generation = 2
    d = decide(batch, pods, T0 + timedelta(minutes=5))
    assert conditions(d)["Failed"] == ("False", cond.REASON_RERUN)
    assert d.create_pod is not None
    assert d.create_pod.start_index == 0
    assert d.status.restarts == 0
    assert cond.REASON_SPEC_CHANGED not in [e.reason for e in d.events]


def test_editing_a_batch_whose_restarts_are_used_up_says_to_raise_max_restarts() -> None:
    batch = started(
        make_batch(retry={"maxRestarts": 0, "neverRetryExitCodes": [3], "backoff": NO_BACKOFF})
    )
    saved(batch, 6)
    pods = [failed(code=3)]
    settle(batch, decide(batch, pods, T0))
    batch.spec.retry.never_retry_exit_codes = []
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0))
    assert d.create_pod is None  # no restart left: the usual rule
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    assert any("raise spec.retry.maxRestarts to go on from item 7" in m for m in messages(d))
    batch.spec.retry.max_restarts = 1
    batch.metadata.generation = 3
    d = settle(batch, decide(batch, pods, T0))
    assert d.create_pod is not None
    assert d.create_pod.start_index == 6
    assert d.status.restarts == 1


# ------------------------------------------------------------------ poison items


def test_imprecise_first_death_counts_zero_and_the_next_attempt_is_careful() -> None:
    batch = started(make_batch(retry={"maxItemAttempts": 1, "backoff": NO_BACKOFF}))
    saved(batch, 9)  # coalesced write: the worker may have been anywhere past item 9
    d = settle(batch, decide(batch, [failed()], T0))
    assert d.status.stall == Stall(index=9, attempts=0)
    assert d.status.skipped == []  # even with maxItemAttempts 1, nothing is blamed yet
    assert d.create_pod is not None
    assert d.create_pod.careful
    assert d.create_pod.start_index == 9


def test_precise_deaths_count_and_the_item_is_skipped_with_its_index_and_error() -> None:
    batch = started(make_batch(retry={"maxItemAttempts": 2, "backoff": NO_BACKOFF}))
    saved(batch, 9)
    settle(batch, decide(batch, [failed()], T0))  # imprecise: stall(9, 0), careful attempt 2
    pods = [failed(), failed("b-2", 2)]
    saved(batch, 9, inflight=9)  # the careful attempt marked item 10 in flight, then died
    d = settle(batch, decide(batch, pods, T0))
    assert d.status.stall == Stall(index=9, attempts=1)
    assert d.status.skipped == []
    assert d.create_pod is not None
    assert d.create_pod.careful
    assert d.create_pod.start_index == 9

    pods.append(failed("b-3", 3))
    saved(batch, 9, inflight=9)
    d = settle(batch, decide(batch, pods, T0))
    assert d.status.skipped == [SkippedItem(index=9, attempts=2, error="worker died: exit 137")]
    assert d.status.stall is None
    assert d.create_pod is not None
    assert d.create_pod.start_index == 10
    assert d.create_pod.careful is False
    assert "Item 10 skipped after 2 attempt(s) died there: worker died: exit 137" in messages(d)
    assert any(e.type == "Warning" and e.reason == "ItemSkipped" for e in d.events)
    assert d.status.restarts == 3
    assert conditions(d)["Failed"][0] == "False"
    assert resume_index(d.status) == 10


def test_recorded_item_error_is_precise_and_is_kept_with_the_skipped_item() -> None:
    batch = started(make_batch(retry={"maxItemAttempts": 1, "backoff": NO_BACKOFF}))
    saved(batch, 9, error="ValueError: bad document", error_index=9)
    d = decide(batch, [failed(code=1)], T0)
    assert d.status.skipped == [SkippedItem(index=9, attempts=1, error="ValueError: bad document")]
    assert d.create_pod is not None
    assert d.create_pod.start_index == 10


def test_an_error_recorded_by_an_older_attempt_is_not_precise() -> None:
    batch = started(make_batch(retry={"maxItemAttempts": 1, "backoff": NO_BACKOFF}))
    saved(batch, 9, error="ValueError: bad document", error_index=9)
    batch.status.checkpoint.context = {"attempt": 0}  # written before this attempt
    d = decide(batch, [failed(code=1)], T0)
    assert d.status.skipped == []
    assert d.status.stall == Stall(index=9, attempts=0)


def test_poison_item_in_fail_mode_fails_the_batch() -> None:
    batch = started(
        make_batch(retry={"maxItemAttempts": 1, "onPoisonItem": "Fail", "backoff": NO_BACKOFF})
    )
    saved(batch, 9, error="ValueError: bad document", error_index=9)
    d = decide(batch, [failed(code=1)], T0)
    assert d.create_pod is None
    assert conditions(d)["Failed"] == ("True", cond.REASON_POISON)
    assert d.status.skipped == []
    assert any("Item 10 killed 1 attempt(s) in a row" in m for m in messages(d))


def poisoned() -> tuple[ResumableBatch, list[PodView]]:
    """A batch Failed with PoisonItem: item 10 raised in attempt 1 (maxItemAttempts 1)."""
    batch = started(
        make_batch(retry={"maxItemAttempts": 1, "onPoisonItem": "Fail", "backoff": NO_BACKOFF})
    )
    saved(batch, 9, error="ValueError: bad document", error_index=9)
    pods = [failed(code=1)]
    d = settle(batch, decide(batch, pods, T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_POISON)
    return batch, pods


def test_a_poison_failure_edited_to_skip_skips_the_item_and_goes_on_after_it() -> None:
    batch, pods = poisoned()
    batch.spec.retry.on_poison_item = "Skip"
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=1)))
    assert d.status.skipped == [SkippedItem(index=9, attempts=1, error="ValueError: bad document")]
    assert d.status.stall is None
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert d.create_pod is not None
    assert (d.create_pod.start_index, d.create_pod.careful) == (10, False)
    assert d.status.restarts == 1
    assert "Item 10 skipped after 1 attempt(s) died there: ValueError: bad document" in messages(d)
    assert any("(PoisonItem): going on from item 11, restart 1/10" in m for m in messages(d))


def test_a_poison_failure_given_more_item_attempts_retries_the_item_until_the_new_limit() -> None:
    batch, pods = poisoned()
    batch.spec.retry.max_item_attempts = 2
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=1)))
    assert d.create_pod is not None
    assert (d.create_pod.start_index, d.create_pod.careful) == (9, True)  # the item again
    assert d.status.skipped == []
    pods.append(failed("b-2", 2, code=1))
    saved(batch, 9, error="ValueError: bad document", error_index=9)
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=2)))
    assert conditions(d)["Failed"] == ("True", cond.REASON_POISON)  # 2 of 2: Fail again
    assert any("Item 10 killed 2 attempt(s) in a row" in m for m in messages(d))


def test_a_poison_failure_edited_otherwise_tries_the_item_once_more() -> None:
    batch, pods = poisoned()
    batch.spec.template.spec.containers[0].image = "worker:fixed"  # the fix is in the image
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, pods, T0 + timedelta(minutes=1)))
    assert d.create_pod is not None
    assert d.create_pod.start_index == 9
    saved(batch, 20)  # the fixed worker got past item 10
    d = settle(batch, decide(batch, [*pods, running("b-2", 2)], T0 + timedelta(minutes=2)))
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert d.status.phase == "Running"


def test_progress_between_deaths_restarts_the_item_count() -> None:
    batch = started(make_batch(retry={"maxItemAttempts": 2, "backoff": NO_BACKOFF}))
    saved(batch, 9, error="E: one", error_index=9)
    d = settle(batch, decide(batch, [failed(code=1)], T0))
    assert d.status.stall == Stall(index=9, attempts=1)
    saved(batch, 15, error="E: two", error_index=15)  # attempt 2 got past item 10
    d = decide(batch, [failed(code=1), failed("b-2", 2, code=1)], T0)
    assert d.status.stall == Stall(index=15, attempts=1)
    assert d.status.skipped == []


def test_a_restart_before_anything_was_saved_says_why_it_starts_at_item_1_again() -> None:
    batch = started(make_batch(total=10, retry={"backoff": NO_BACKOFF}))
    d = decide(batch, [failed(code=1)], T0)
    assert "Started at item 1/10 after exit 1 (attempt 2, pod b-2)" in messages(d)


def test_workers_that_die_before_any_item_never_get_an_item_skipped() -> None:
    batch = started(
        make_batch(total=5, retry={"maxRestarts": 20, "maxItemAttempts": 2, "backoff": NO_BACKOFF})
    )
    pods: list[PodView] = []
    for attempt in range(1, 22):  # 1 attempt + 20 restarts
        pods.append(failed(f"b-{attempt}", attempt, code=1))
        d = settle(batch, decide(batch, pods, T0))
    assert batch.status.skipped == []
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)


# -------------------------------------------------------------------- exit 0


def test_exit_0_with_items_left_warns_not_finished_and_restarts() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 30)
    d = decide(batch, [succeeded()], T0)
    assert d.status.restarts == 1
    warnings = [e for e in d.events if e.reason == cond.REASON_NOT_FINISHED]
    assert len(warnings) == 1
    assert warnings[0].type == "Warning"
    assert "exited 0 with items left (30/50)" in warnings[0].message
    assert d.create_pod is not None
    assert d.create_pod.start_index == 30
    assert conditions(d)["Succeeded"][0] == "Unknown"
    assert d.outcome is not None
    assert d.outcome.kind == "not-finished"


@pytest.mark.parametrize(("max_restarts", "resumes"), [(1, True), (0, False)])
def test_exit_0_with_items_left_says_resuming_only_when_a_restart_follows(
    max_restarts: int, resumes: bool
) -> None:
    batch = started(make_batch(retry={"maxRestarts": max_restarts, "backoff": NO_BACKOFF}))
    saved(batch, 30)
    d = decide(batch, [succeeded()], T0)
    told = next(e.message for e in d.events if e.reason == cond.REASON_NOT_FINISHED)
    assert told.startswith("Worker b-1 exited 0 with items left (30/50)")
    assert told.endswith("; resuming") is resumes
    assert (d.create_pod is not None) is resumes
    if not resumes:
        assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)


def test_exit_0_without_saving_anything_blames_no_item_and_says_what_is_missing() -> None:
    # A worker that never calls the SDK exits 0 at once, attempt after attempt:
    # no item was started, so none may be skipped as poison.
    batch = started(
        make_batch(total=5, retry={"maxRestarts": 6, "maxItemAttempts": 2, "backoff": NO_BACKOFF})
    )
    pods: list[PodView] = []
    for attempt in range(1, 8):
        pods.append(succeeded(f"b-{attempt}", attempt))
        d = settle(batch, decide(batch, pods, T0))
    assert batch.status.skipped == []
    assert conditions(d)["Failed"] == ("True", cond.REASON_MAX_RESTARTS)
    warnings = [m for m in messages(d) if "exited 0 with items left" in m]
    assert warnings, messages(d)
    assert "without saving any progress (does it call resumable.start()" in warnings[0]


def test_exit_0_finished_succeeds_then_the_ttl_deletes_the_batch() -> None:
    batch = started(make_batch(ttlSecondsAfterFinished=60))
    cp = batch.status.checkpoint
    cp.finished, cp.items_done, cp.next_index, cp.completed = True, 50, 0, ""
    cp.tokens, cp.cost_usd = 1000, 0.25
    done = T0 + timedelta(seconds=10)

    d = settle(batch, decide(batch, [succeeded()], done))
    assert conditions(d) == {
        "Progressing": ("False", cond.REASON_COMPLETED),
        "Suspended": ("False", cond.REASON_NOT_SUSPENDED),
        "Succeeded": ("True", cond.REASON_COMPLETED),
        "Failed": ("False", cond.REASON_COMPLETED),
    }
    assert d.status.phase == "Succeeded"
    assert d.status.completion_time == format_time(done)
    assert d.status.progress == "50/50"
    assert d.status.active_pod == ""
    assert d.create_pod is None
    assert d.delete_batch is False
    assert d.requeue_after == 60.0
    assert (
        "Completed 50/50 items (0 skipped) after 0 restart(s) and 0 disruption(s); "
        "1000 tokens, $0.2500"
    ) in messages(d)

    later = decide(batch, [succeeded()], done + timedelta(seconds=59))
    assert later.delete_batch is False
    assert later.create_pod is None
    assert not later.status_changed
    assert later.requeue_after == pytest.approx(1.0)

    expired = decide(batch, [succeeded()], done + timedelta(seconds=60))
    assert expired.delete_batch is True
    assert expired.create_pod is None


def test_a_worker_with_fewer_items_than_spec_total_items_is_counted_by_its_own_list() -> None:
    batch = started(make_batch(total=100, retry={"backoff": NO_BACKOFF}))
    saved(batch, 20)
    batch.status.checkpoint.total_items = 50  # the worker's list has 50 items
    d = settle(batch, decide(batch, [running()], T0))
    warnings = [e for e in d.events if e.reason == cond.REASON_TOTAL_ITEMS_MISMATCH]
    assert [(e.type, e.message) for e in warnings] == [
        (
            "Warning",
            "spec.totalItems was 100 but the worker has 50 items; "
            "progress and messages use the worker's 50",
        )
    ]
    assert conditions(d)[cond.TOTAL_ITEMS_MISMATCH] == ("True", cond.REASON_WORKER_COUNT)
    assert_no_op(batch, [running()], T0 + timedelta(minutes=1))  # said once, not per resync

    d = settle(batch, decide(batch, [failed()], T0 + timedelta(minutes=2)))  # killed at 21
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in messages(d)
    assert d.status.progress == "20/50"
    assert d.create_pod is not None
    assert d.create_pod.total_items == 100  # RESUMABLE_TOTAL_ITEMS stays what the spec says
    assert cond.REASON_TOTAL_ITEMS_MISMATCH not in [e.reason for e in d.events]

    cp = batch.status.checkpoint
    cp.finished, cp.items_done, cp.next_index, cp.completed = True, 50, 0, ""
    d = settle(batch, decide(batch, [failed(), succeeded("b-2", 2)], T0 + timedelta(minutes=3)))
    assert d.status.phase == "Succeeded"
    assert d.status.progress == "50/50"
    assert any(m.startswith("Completed 50/50 items") for m in messages(d))

    batch.spec.total_items = 50  # the spec corrected: nothing left to say
    batch.metadata.generation = 2
    d = decide(batch, [failed(), succeeded("b-2", 2)], T0 + timedelta(minutes=4))
    assert cond.TOTAL_ITEMS_MISMATCH not in conditions(d)
    assert d.events == []


def test_finished_batch_without_ttl_is_kept() -> None:
    batch = started(make_batch())
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    settle(batch, decide(batch, [succeeded()], T0))
    d = decide(batch, [succeeded()], T0 + timedelta(days=30))
    assert d.delete_batch is False
    assert d.requeue_after is None


def test_a_worker_killed_after_saving_its_last_item_counts_as_success() -> None:
    batch = started(make_batch())
    batch.status.checkpoint.finished = True
    batch.status.checkpoint.items_done = 50
    d = decide(batch, [failed(code=143)], T0)
    assert conditions(d)["Succeeded"] == ("True", cond.REASON_COMPLETED)
    assert d.status.restarts == 0
    assert d.create_pod is None


# ---------------------------------------------------------------------- suspend


def test_suspend_deletes_the_active_pod_gracefully_and_sets_suspended() -> None:
    batch = started(make_batch())
    saved(batch, 9)
    batch.spec.suspend = True
    d = settle(batch, decide(batch, [running()], T0))
    assert d.delete_pods == [("b-1", True)]  # graceful: the SDK flushes on SIGTERM
    assert d.create_pod is None
    assert conditions(d)["Suspended"] == ("True", cond.REASON_SUSPENDED)
    assert conditions(d)["Progressing"] == ("False", cond.REASON_SUSPENDED)
    assert d.status.phase == "Suspended"
    assert d.status.active_pod == ""
    # Told before the worker's exit flush, so the event gives a lower bound.
    assert messages(d) == [
        "Suspending: stopping the worker; the batch resumes at item 10/50 or later, as "
        "the worker saves what it finished on its way out"
    ]

    # The pod terminating, then ended by the SIGTERM: no restart counted, no new pod.
    assert_no_op(batch, [running(deleting=True)], T0 + timedelta(seconds=1))
    assert_no_op(batch, [failed(code=143, deleting=True)], T0 + timedelta(seconds=2))
    assert batch.status.restarts == 0


@pytest.mark.parametrize(("total", "shown"), [(50, "0/50"), (None, "0")])
def test_a_batch_created_suspended_shows_its_progress(total: int | None, shown: str) -> None:
    batch = make_batch(total=total, suspend=True)
    d = settle(batch, decide(batch, [], T0))
    assert d.create_pod is None
    assert d.status.phase == "Suspended"
    assert d.status.progress == shown  # not an empty Progress column


def test_unsuspend_starts_a_new_attempt_from_the_checkpoint() -> None:
    batch = started(make_batch())
    saved(batch, 9)
    batch.spec.suspend = True
    settle(batch, decide(batch, [running()], T0))
    saved(batch, 14)  # the worker flushed on SIGTERM
    batch.spec.suspend = False
    d = decide(batch, [failed(code=143)], T0 + timedelta(seconds=5))
    assert conditions(d)["Suspended"] == ("False", cond.REASON_NOT_SUSPENDED)
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.start_index) == ("b-2", 14)
    assert d.status.restarts == 0
    assert "Resumed at item 15/50 after suspend (attempt 2)" in messages(d)


def test_suspended_while_backing_off_starts_nothing() -> None:
    batch = started(make_batch())  # default backoff 2s
    settle(batch, decide(batch, [failed()], T0))
    batch.spec.suspend = True
    d = settle(batch, decide(batch, [failed()], T0 + timedelta(minutes=1)))
    assert d.create_pod is None
    assert d.status.retry_after == ""
    assert conditions(d)["Suspended"][0] == "True"
    assert messages(d) == ["Suspended at item 1/50"]  # no worker to wait for: exact


def test_resuming_after_a_suspend_names_the_suspend_not_an_older_crash() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 5)
    settle(batch, decide(batch, [failed()], T0))  # a crash: lastFailure "exit 137"
    saved(batch, 9)
    batch.spec.suspend = True
    settle(batch, decide(batch, [failed(), running("b-2", 2)], T0))
    batch.spec.suspend = False
    d = decide(batch, [failed(), failed("b-2", 2, code=143)], T0 + timedelta(seconds=5))
    assert "Resumed at item 10/50 after suspend (attempt 3)" in messages(d)


# ------------------------------------------------------------------------ rerun


def test_new_run_id_resets_checkpoint_restarts_and_skipped_and_starts_from_item_0() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    cp = batch.status.checkpoint
    cp.finished, cp.items_done, cp.tokens = True, 49, 900
    batch.status.restarts = 2
    batch.status.disruptions = 1
    batch.status.skipped = [SkippedItem(index=4, attempts=2, error="boom")]
    settle(batch, decide(batch, [succeeded()], T0))
    assert batch.status.phase == "Succeeded"

    batch.spec.run_id = "second"
    d = decide(batch, [succeeded()], T0 + timedelta(minutes=1))
    st = d.status
    assert st.run_id == "second"
    assert (st.restarts, st.disruptions, st.skipped, st.stall) == (0, 0, [], None)
    assert (st.checkpoint.next_index, st.checkpoint.completed, st.checkpoint.items_done) == (
        0,
        "",
        0,
    )
    assert st.checkpoint.tokens == 0
    assert st.checkpoint.finished is False
    assert d.create_pod is not None
    assert d.create_pod.start_index == 0
    # Attempt 2 is the rerun's fencing token (taken at once, see the next test), so
    # its first pod is attempt 3.
    assert d.create_pod.attempt == 3
    assert st.checkpoint.attempt == 3
    assert conditions(d)["Succeeded"] == ("Unknown", cond.REASON_RERUN)
    assert conditions(d)["Failed"] == ("False", cond.REASON_RERUN)
    assert "runId changed to 'second': clean rerun from item 1" in messages(d)
    assert st.completion_time == ""
    assert st.phase == "Running"


def test_a_rerun_that_succeeds_does_not_count_the_skipped_attempt_numbers() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 20)
    settle(batch, decide(batch, [failed()], T0))  # b-1 killed; b-2 resumes
    batch.spec.run_id = "second"
    pods = [failed(), running("b-2", 2)]
    settle(batch, decide(batch, pods, T0))  # the rerun stops b-2 (attempt 3 is the token)
    pods = [failed(), failed("b-2", 2, code=143)]
    d = settle(batch, decide(batch, pods, T0))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-4"  # the rerun's one and only worker
    cp = batch.status.checkpoint
    cp.finished, cp.items_done, cp.next_index, cp.completed = True, 50, 0, ""
    d = decide(batch, [*pods, succeeded("b-4", 4)], T0)
    done = next(e.message for e in d.events if e.reason == cond.REASON_COMPLETED)
    assert done.startswith("Completed 50/50 items (0 skipped) after 0 restart(s) and 0 disr")
    assert "4 attempt" not in done


def test_new_run_id_stops_the_running_worker() -> None:
    batch = started(make_batch())
    saved(batch, 20)
    batch.spec.run_id = "again"
    d = decide(batch, [running()], T0)
    assert ("b-1", True) in d.delete_pods
    assert d.status.checkpoint.next_index == 0
    assert d.status.checkpoint.completed == ""


def test_new_run_id_fences_out_the_old_runs_worker_before_it_flushes() -> None:
    # The old worker had not saved yet (nextIndex 0) when the rerun came; its SIGTERM
    # flush tests attempt 1 and nextIndex 0. Were the attempt kept, that write would
    # land in the rerun's empty checkpoint and the rerun would skip those items.
    batch = started(make_batch())
    before = batch.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    batch.spec.run_id = "second"
    d = settle(batch, decide(batch, [running()], T0))
    assert ("b-1", True) in d.delete_pods
    doc = {"status": before}
    after = d.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc = apply_patch(doc, objects.status_patch(before, after))
    flush = [
        {"op": "test", "path": "/status/checkpoint/attempt", "value": 1},
        {"op": "test", "path": "/status/checkpoint/nextIndex", "value": 0},
        {"op": "replace", "path": "/status/checkpoint", "value": {"nextIndex": 30}},
    ]
    with pytest.raises(PatchTestFailedError):
        apply_patch(doc, flush)


def test_new_run_id_waits_for_the_old_worker_to_end_before_the_next_pod() -> None:
    batch = started(make_batch())
    saved(batch, 20)
    batch.spec.run_id = "again"
    d = decide(batch, [running()], T0)
    assert ("b-1", True) in d.delete_pods
    assert d.create_pod is None


# ------------------------------------------------------------------ stale pods


def test_stale_live_pods_are_deleted_and_the_active_one_is_kept() -> None:
    batch = started(make_batch())
    settle(batch, decide(batch, [running()], T0))
    pods = [
        running(),  # active
        running("b-0", 0),  # stale, live: delete
        running("b-7", 7, deleting=True),  # stale, already being deleted: leave it
        failed("b-6", 6),  # ended: nothing to stop
    ]
    d = decide(batch, pods, T0)
    assert d.delete_pods == [("b-0", True)]
    assert d.create_pod is None
    assert d.status.active_pod == "b-1"


def test_active_pod_missing_is_a_disruption_and_a_new_attempt_starts() -> None:
    batch = started(make_batch(retry={"maxRestarts": 0}))
    saved(batch, 11)
    d = decide(batch, [], T0)  # b-1 was deleted (or never created)
    assert d.status.disruptions == 1
    assert d.status.restarts == 0
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.attempt, d.create_pod.start_index) == ("b-2", 2, 11)
    assert any("disruption (PodDeleted)" in m for m in messages(d))


def test_active_pod_being_deleted_is_waited_for_before_a_new_attempt() -> None:
    batch = started(make_batch())
    settle(batch, decide(batch, [running()], T0))
    d = decide(batch, [running(deleting=True)], T0)
    assert d.create_pod is None
    assert d.delete_pods == []
    assert d.requeue_after is not None
    assert d.requeue_after <= 1.0


def test_skipped_items_are_stepped_over_by_resume_index() -> None:
    batch = started(make_batch())
    cp = batch.status.checkpoint
    cp.next_index, cp.completed = 3, "0-2,5"
    batch.status.skipped = [SkippedItem(index=3, attempts=2, error="x")]
    assert resume_index(batch.status) == 4


# ---------------------------------------------------------------- conditions


def test_set_condition_keeps_last_transition_time_when_only_the_message_changes() -> None:
    conds: list[Condition] = []
    assert cond.set_condition(conds, "Progressing", "True", "Running", "a", generation=1, now="t1")
    assert cond.set_condition(conds, "Progressing", "True", "Running", "b", generation=1, now="t2")
    assert conds[0].message == "b"
    assert conds[0].last_transition_time == "t1"
    assert not cond.set_condition(
        conds, "Progressing", "True", "Running", "b", generation=1, now="t3"
    )
    assert cond.set_condition(conds, "Progressing", "False", "Done", "b", generation=2, now="t4")
    assert conds[0].last_transition_time == "t4"
    assert conds[0].observed_generation == 2


def test_decide_keeps_progressing_transition_time_across_message_changes() -> None:
    batch = started(make_batch())
    d = settle(batch, decide(batch, [running()], T0 + timedelta(seconds=30)))
    progressing = next(c for c in d.status.conditions if c.type == "Progressing")
    assert progressing.reason == cond.REASON_RUNNING  # message and reason changed...
    assert progressing.last_transition_time == format_time(T0)  # ...status did not


# ------------------------------------------------------------- deletion and lost pods


def test_a_failed_batch_is_deleted_after_its_ttl() -> None:
    batch = started(make_batch(retry={"neverRetryExitCodes": [3]}, ttlSecondsAfterFinished=60))
    d = settle(batch, decide(batch, [failed(code=3)], T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_NEVER_RETRY)
    assert d.requeue_after == 60.0  # the operator comes back then...
    later = decide(batch, [failed(code=3)], T0 + timedelta(seconds=61))
    assert later.delete_batch  # ...and deletes it


def test_a_batch_being_deleted_gets_no_new_worker() -> None:
    batch = started(make_batch(retry={"backoff": NO_BACKOFF}))
    saved(batch, 5)
    batch.metadata.deletion_timestamp = format_time(T0)
    d = decide(batch, [failed()], T0)
    assert d.create_pod is None
    d = decide(batch, [running()], T0)
    assert d.create_pod is None
    assert ("b-1", True) in d.delete_pods


def test_a_deleted_worker_pod_is_an_uncounted_disruption_whether_seen_ending_or_gone() -> None:
    seen = started(make_batch(retry={"maxRestarts": 0, "backoff": NO_BACKOFF}))
    saved(seen, 5)
    gone = seen.model_copy(deep=True)
    # kubectl delete pod: SIGTERM, exit 143 while deleting, then the pod is removed.
    ending = decide(seen, [failed(code=143, deleting=True)], T0)
    vanished = decide(gone, [], T0)
    for d in (ending, vanished):
        assert d.status.restarts == 0
        assert d.status.disruptions == 1
        assert conditions(d)["Failed"][0] == "False"
        assert d.create_pod is not None
        assert d.create_pod.start_index == 5


def test_a_pod_stuck_terminating_on_a_lost_node_is_force_deleted_and_replaced() -> None:
    batch = started(make_batch(retry={"maxRestarts": 0, "backoff": NO_BACKOFF}))
    saved(batch, 10)
    # Taint-based eviction deleted it (30 s grace); its node never answers again.
    lost = running(deleting=True, delete_by=format_time(T0 + timedelta(seconds=30)))
    waiting = decide(batch, [lost], T0 + timedelta(minutes=1))
    assert waiting.create_pod is None  # within the grace period and margin: wait
    assert waiting.delete_pods == []
    d = decide(batch, [lost], T0 + timedelta(minutes=10))
    assert ("b-1", False) in d.delete_pods  # gracePeriodSeconds 0
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.start_index) == ("b-2", 10)
    assert d.status.disruptions == 1
    assert d.status.restarts == 0
    assert any("disruption (NodeLost)" in m for m in messages(d))


def test_conditions_carry_the_generation_they_were_judged_against() -> None:
    batch = started(make_batch())
    settle(batch, decide(batch, [running()], T0))
    batch.metadata.generation = 2  # e.g. retry.maxRestarts edited
    d = decide(batch, [running()], T0)
    assert d.status.observed_generation == 2
    assert {c.type: c.observed_generation for c in d.status.conditions} == {
        "Succeeded": 2,
        "Failed": 2,
        "Suspended": 2,
        "Progressing": 2,
    }


@pytest.mark.parametrize(
    "edit",
    [
        lambda spec: setattr(spec, "ttl_seconds_after_finished", 7 * 86400),  # a post-mortem
        lambda spec: setattr(spec, "suspend", True),
        lambda spec: setattr(spec.retry, "max_restarts", 9),  # reopens MaxRestarts failures only
    ],
    ids=["ttl-extended", "suspended", "max-restarts-raised"],
)
def test_an_edit_that_cannot_fix_a_failed_batch_leaves_it_failed(edit: Any) -> None:
    batch = started(
        make_batch(retry={"maxRestarts": 3, "neverRetryExitCodes": [3], "backoff": NO_BACKOFF})
    )
    saved(batch, 6)
    pods = [failed(code=3)]
    settle(batch, decide(batch, pods, T0))
    assert conditions(decide(batch, pods, T0))["Failed"] == ("True", cond.REASON_NEVER_RETRY)
    assert batch.status.failed_spec  # what it failed under
    edit(batch.spec)
    batch.metadata.generation = 2
    d = decide(batch, pods, T0 + timedelta(minutes=5))
    assert d.create_pod is None
    assert d.status.restarts == 0
    assert conditions(d)["Failed"] == ("True", cond.REASON_NEVER_RETRY)
    # Editing what judged it does reopen it, and the record goes with the failure.
    batch.spec.retry.never_retry_exit_codes = []
    batch.metadata.generation = 3
    d = decide(batch, pods, T0 + timedelta(minutes=6))
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert d.status.failed_spec == ""
