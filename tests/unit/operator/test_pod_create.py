"""decide() told what became of creating the active attempt's pod (PodCreate).

The executor writes the attempt, then creates its pod; how the create went comes
back to decide() as an observation, and decide() alone changes the status for
it: a refused-for-now pod keeps the attempt waiting (phase Pending), an invalid
one fails the batch, a name held by another object's pod moves on to the next
attempt, and a pod created at last gets the start announcement held back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_core import conditions as cond
from resumable_core.decision import Decision, PodCreate, PodView
from resumable_core.reconcile import decide

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}


def make_batch(**spec: Any) -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "totalItems": 50,
                "template": {"spec": {"containers": [{"name": "w", "command": ["work"]}]}},
                **spec,
            },
        }
    )


def settle(batch: ResumableBatch, decision: Decision) -> Decision:
    """The executor wrote the decided status: the next decision reads it."""
    batch.status = decision.status.model_copy(deep=True)
    return decision


def started() -> ResumableBatch:
    """Attempt 1 written (pod b-1), its pod not created yet."""
    batch = make_batch()
    settle(batch, decide(batch, [], T0))
    return batch


def progressing(d: Decision) -> tuple[str, str, str]:
    c = cond.find(d.status.conditions, cond.PROGRESSING)
    assert c is not None
    return c.status, c.reason, c.message


def reasons(d: Decision) -> list[str]:
    return [e.reason for e in d.events]


def test_the_start_events_wait_for_the_pod_and_no_other_event_does() -> None:
    d = decide(make_batch(), [], T0)
    assert [(e.reason, e.once_pod_exists) for e in d.events] == [
        ("Accepted", False),
        ("Started", True),
    ]


def test_a_pod_created_on_the_first_try_changes_nothing_more() -> None:
    batch = started()
    d = decide(batch, [], T0, create=PodCreate("b-1", 1, "created"))
    assert not d.status_changed
    assert d.events == []
    assert d.create_pod is None
    assert d.status.phase == "Running"


def test_a_pod_refused_as_invalid_fails_the_batch_with_the_servers_message() -> None:
    batch = started()
    why = 'Pod "b-1" is invalid: metadata.labels: Invalid value: "not a label"'
    d = settle(batch, decide(batch, [], T0, create=PodCreate("b-1", 1, "refused", why)))
    assert progressing(d) == (
        "False",
        cond.REASON_POD_CREATE_FAILED,
        f"Cannot create pod b-1: {why}",
    )
    failed = cond.find(d.status.conditions, cond.FAILED)
    assert failed is not None
    assert (failed.status, failed.reason) == ("True", cond.REASON_POD_CREATE_FAILED)
    assert d.status.phase == "Failed"
    assert d.status.active_pod == ""
    assert d.status.checkpoint.attempt == 1
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert d.status.completion_time
    assert d.status.last_failure == "pod creation refused"
    assert reasons(d) == [cond.REASON_POD_CREATE_FAILED]
    assert d.outcome is None  # no attempt ran, so none ended
    assert d.create_pod is None
    again = decide(batch, [], T0 + timedelta(minutes=1))  # the report is not needed again
    assert not again.status_changed
    assert again.events == []
    assert again.create_pod is None


def test_a_pod_refused_for_now_keeps_the_attempt_pending_and_asks_for_it_again() -> None:
    batch = started()
    why = '403: pods "b-1" is forbidden: exceeded quota'
    report = PodCreate("b-1", 1, "retrying", why, retry_in=2.0)
    d = settle(batch, decide(batch, [], T0, create=report))
    assert d.status.phase == "Pending"
    status, reason, message = progressing(d)
    assert (status, reason) == ("True", cond.REASON_POD_CREATE_RETRYING)
    assert message.startswith(f"Cannot create pod b-1 yet: {why}; retrying")
    assert [e.message for e in d.events] == [
        f"Cannot create pod b-1 yet: {why}; trying again in 2s (attempt 1 is kept)"
    ]
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.attempt) == ("b-1", 1)
    assert not d.bump_attempt
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    # Waiting for the next try, and refused again the same way: nothing to write.
    for later in (PodCreate("b-1", 1, "retrying", why), report):
        again = decide(batch, [], T0 + timedelta(seconds=3), create=later)
        assert not again.status_changed
        assert again.create_pod == d.create_pod
    assert decide(batch, [], T0, create=PodCreate("b-1", 1, "retrying", why)).events == []


def test_a_pod_created_after_being_refused_announces_the_start_held_back() -> None:
    batch = started()
    refused = PodCreate("b-1", 1, "retrying", "403: quota", retry_in=1.0)
    settle(batch, decide(batch, [], T0, create=refused))
    d = decide(batch, [], T0 + timedelta(seconds=5), create=PodCreate("b-1", 1, "created"))
    assert progressing(d) == ("True", cond.REASON_POD_CREATED, "Attempt 1 started at item 1/50.")
    assert d.status.phase == "Running"
    assert [(e.reason, e.message) for e in d.events] == [
        ("Started", "Started at item 1/50 (attempt 1, pod b-1)")
    ]
    assert d.create_pod is None


def test_a_resumed_attempt_created_after_being_refused_says_resumed_and_how_long_it_took() -> None:
    batch = make_batch(retry={"backoff": NO_BACKOFF})
    settle(batch, decide(batch, [], T0))
    cp = batch.status.checkpoint
    cp.next_index, cp.completed, cp.items_done, cp.context = 20, "0-19", 20, {"attempt": 1}
    died = PodView("b-1", 1, "Failed", exit_code=1, reason="Error")
    d = settle(batch, decide(batch, [died], T0))  # attempt 2 written: b-2
    assert d.create_pod is not None
    assert d.create_pod.name == "b-2"
    settle(batch, decide(batch, [died], T0, create=PodCreate("b-2", 2, "retrying", "403")))
    d = decide(batch, [died], T0 + timedelta(seconds=8), create=PodCreate("b-2", 2, "created"))
    assert progressing(d)[1] == cond.REASON_RESUMED
    assert [e.message for e in d.events] == ["Resumed at item 21/50 after exit 1 (attempt 2)"]
    assert d.resumed_after_seconds == pytest.approx(8.0)


def test_a_pod_name_taken_by_another_objects_pod_moves_on_without_a_disruption() -> None:
    batch = started()
    d = decide(batch, [], T0, create=PodCreate("b-1", 1, "taken", "belongs to another object"))
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.attempt) == ("b-2", 2)
    assert d.status.active_pod == "b-2"
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert "Disrupted" not in reasons(d)


def test_a_report_about_another_attempt_or_a_pod_now_seen_is_not_taken_for_this_one() -> None:
    batch = started()
    # A report about a pod that is now observed: the observation wins.
    seen = decide(batch, [PodView("b-1", 1, "Running")], T0, create=PodCreate("b-1", 1, "refused"))
    assert seen.status.phase == "Running"
    assert seen.status.active_pod == "b-1"
    # A report about an older attempt: the active one's pod is missing, a disruption.
    stale = decide(batch, [], T0, create=PodCreate("b-0", 0, "refused"))
    assert stale.status.disruptions == 1
    assert "Disrupted" in reasons(stale)
