"""The "how to go on" hints of `resumable run` and of the cluster commands, from one table.

Both hints word :func:`resumable_core.hints.resume_hint`: each row is an ended (or
not ended) batch's spec and status, as the reconciler leaves them, and both the
local end message (``ended_hint``) and the cluster refusal of suspend/resume
(``ended_error``) must name the same way to go on and the same item. The item is
checked against the reconciler itself: once the remedy a hint names is applied,
:func:`~resumable_core.reconcile.decide` goes on from that item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_cli.control import ended_error
from resumable_cli.run import ended_hint
from resumable_core import conditions as cond
from resumable_core.hints import ResumeHint, Way, resume_hint
from resumable_core.policy.reopen import spec_digest
from resumable_core.progress import resume_index
from resumable_core.reconcile import decide

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}


def ended(type_: str, reason: str, message: str) -> list[dict[str, str]]:
    """The conditions of a batch that succeeded or failed with reason."""
    other = cond.FAILED if type_ == cond.SUCCEEDED else cond.SUCCEEDED
    return [
        {"type": cond.PROGRESSING, "status": "False", "reason": reason, "message": message},
        {"type": cond.SUSPENDED, "status": "False", "reason": cond.REASON_NOT_SUSPENDED},
        {"type": type_, "status": "True", "reason": reason, "message": message},
        {"type": other, "status": "False", "reason": reason},
    ]


def stopped_at(done: int, **more: Any) -> dict[str, Any]:
    """A status whose worker saved items 1..done (0-based 0..done-1), then stopped."""
    checkpoint = {
        "nextIndex": done,
        "completed": f"0-{done - 1}" if done > 1 else ("0" if done else ""),
        "itemsDone": done,
        "attempt": 3,
    }
    return {"checkpoint": checkpoint, "observedGeneration": 1, "runId": "", **more}


@dataclass(frozen=True)
class Case:
    """An ended (or not) batch, and the way and item both hints must name."""

    id: str
    status: dict[str, Any]
    way: Way | None  # None: not ended, so neither command has a hint
    item: int | None = None  # the checkpoint item both name; None when they name none
    retry: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        # The bug this table was written for: item 5 was skipped as poison in the same
        # pass that spent the last restart. The worker's saved position is still item 5;
        # the reconciler goes on at item 6.
        "restarts-spent-after-a-skipped-poison-item",
        {
            **stopped_at(4, restarts=1, phase="Failed"),
            "skipped": [{"index": 4, "attempts": 1, "error": "worker died: exit 137"}],
            "conditions": ended(
                cond.FAILED, cond.REASON_MAX_RESTARTS, "maxRestarts (1) exhausted."
            ),
        },
        Way.RAISE_MAX_RESTARTS,
        6,
        {"maxRestarts": 1, "maxItemAttempts": 1, "onPoisonItem": "Skip"},
    ),
    Case(
        "restarts-spent-with-items-done-after-a-skipped-one",
        {
            **stopped_at(4, restarts=2, phase="Failed"),
            "checkpoint": {"nextIndex": 4, "completed": "0-3,5-7", "itemsDone": 7, "attempt": 3},
            "skipped": [{"index": 4, "attempts": 2, "error": "boom"}],
            "conditions": ended(cond.FAILED, cond.REASON_MAX_RESTARTS, "2 of 2 used."),
        },
        Way.RAISE_MAX_RESTARTS,
        9,
        {"maxRestarts": 2},
    ),
    Case(
        "restarts-spent-and-raised-already",
        {
            **stopped_at(4, restarts=2, phase="Failed"),
            "conditions": ended(cond.FAILED, cond.REASON_MAX_RESTARTS, "2 of 2 used."),
        },
        Way.RESTARTS_RAISED,
        5,
        {"maxRestarts": 4},
    ),
    Case(
        "never-retry-exit-code",
        {
            **stopped_at(5, phase="Failed"),
            "conditions": ended(cond.FAILED, cond.REASON_NEVER_RETRY, "Exit 3 is never retried."),
        },
        Way.EDIT_SPEC,
        6,
        {"maxRestarts": 5, "neverRetryExitCodes": [3]},
    ),
    Case(
        "poison-item-fails-the-batch",
        {
            **stopped_at(9, restarts=1, phase="Failed"),
            "stall": {"index": 9, "attempts": 1},
            "conditions": ended(
                cond.FAILED, cond.REASON_POISON, "Item 10 killed 1 attempt(s) in a row."
            ),
        },
        Way.EDIT_SPEC,
        10,
        {"maxRestarts": 6, "maxItemAttempts": 1, "onPoisonItem": "Fail"},
    ),
    Case(
        "worker-pod-refused",
        {
            **stopped_at(0, phase="Failed"),
            "conditions": ended(
                cond.FAILED, cond.REASON_POD_CREATE_FAILED, "pods is forbidden:\n  exceeded quota"
            ),
        },
        Way.EDIT_SPEC,
        1,
    ),
    Case(
        "failed-for-a-reason-no-edit-reopens",
        {
            **stopped_at(4, phase="Failed"),
            "conditions": ended(cond.FAILED, "SomethingElse", "Gone wrong."),
        },
        Way.START_OVER,
    ),
    Case(
        "succeeded",
        {
            "checkpoint": {"finished": True, "itemsDone": 30, "attempt": 2},
            "observedGeneration": 1,
            "phase": "Succeeded",
            "conditions": ended(cond.SUCCEEDED, cond.REASON_COMPLETED, "Completed 30/30 items."),
        },
        Way.RERUN,
    ),
    Case(
        "suspended",
        {
            **stopped_at(4, phase="Suspended"),
            "conditions": [
                {"type": cond.SUSPENDED, "status": "True", "reason": cond.REASON_SUSPENDED},
                {"type": cond.FAILED, "status": "False", "reason": cond.REASON_RECONCILING},
            ],
        },
        None,
    ),
    Case("running", {**stopped_at(4, phase="Running", activePod="b-4")}, None),
]

#: What each hint says for each way (local `resumable run`, cluster suspend/resume).
REMEDY = {
    Way.RERUN: ("to run it again from item 1, change spec.runId", "starts it again from item 1"),
    Way.EDIT_SPEC: ("fix the cause in the manifest's spec", "fix the cause and edit its spec"),
    Way.RAISE_MAX_RESTARTS: ("raise spec.retry.maxRestarts above", "raise spec.retry.maxRestarts"),
    Way.RESTARTS_RAISED: ("spec.retry.maxRestarts is already", "spec.retry.maxRestarts is already"),
    Way.START_OVER: ("to start over from item 1, change spec.runId", "starts it over from item 1"),
}
#: The ways that go on from the checkpoint: a hint names one of them at most.
GOING_ON = {Way.EDIT_SPEC, Way.RAISE_MAX_RESTARTS, Way.RESTARTS_RAISED}


def batch_of(case: Case) -> ResumableBatch:
    batch = ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": {
                "totalItems": 30,
                "retry": {"backoff": NO_BACKOFF, **case.retry},
                "template": {"spec": {"containers": [{"name": "worker", "command": ["work"]}]}},
            },
            "status": case.status,
        }
    )
    if cond.is_true(batch.status.conditions, cond.FAILED):
        batch.status.failed_spec = spec_digest(batch.spec)  # as decide() records it
    return batch


def checkpoint_items(text: str) -> list[int]:
    """The items a hint names as the checkpoint to go on from."""
    return [int(n) for n in re.findall(r"checkpoint \(item (\d+)\)", text)]


def both_hints(hint: ResumeHint) -> tuple[str, str]:
    """(what `resumable run` prints, what `resumable resume` refuses with)."""
    return ended_hint("b", hint, Path("/state")), ended_error("b", "ns", hint, "resume")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_both_hints_name_the_same_way_and_the_same_item(case: Case) -> None:
    batch = batch_of(case)
    hint = resume_hint(batch.spec, batch.status)
    if case.way is None:
        assert hint is None  # neither command says how to go on: nothing ended
        return
    assert hint is not None
    assert (hint.way, hint.item if case.item is not None else None) == (case.way, case.item)
    local, cluster = both_hints(hint)
    named = [case.item] if case.item is not None else []
    assert checkpoint_items(local) == named, local
    assert checkpoint_items(cluster) == named, cluster
    local_says, cluster_says = REMEDY[case.way]
    assert local_says in local, local
    assert cluster_says in cluster, cluster
    for way in GOING_ON - {case.way}:  # (both offer a rerun from item 1 as well)
        other_local, other_cluster = REMEDY[way]
        assert other_local not in local, (way, local)
        assert other_cluster not in cluster, (way, cluster)


def remedied(batch: ResumableBatch, hint: ResumeHint) -> ResumableBatch:
    """The batch after the user did what the hint says (as the edited object's spec)."""
    edited = batch.model_copy(deep=True)
    edited.metadata.generation = 2
    if hint.way is Way.RAISE_MAX_RESTARTS:
        edited.spec.retry.max_restarts = hint.restarts + 1
    elif hint.way is Way.EDIT_SPEC:  # the fixed worker
        edited.spec.template.spec.containers[0].command = ["work", "--fixed"]
    elif hint.way in (Way.START_OVER, Way.RERUN):
        edited.spec.run_id = "again"
    return edited  # RESTARTS_RAISED: nothing left to do


@pytest.mark.parametrize("case", [c for c in CASES if c.way is not None], ids=lambda c: c.id)
def test_the_item_a_hint_names_is_where_the_reconciler_goes_on_after_its_remedy(
    case: Case,
) -> None:
    batch = batch_of(case)
    hint = resume_hint(batch.spec, batch.status)
    assert hint is not None
    decision = decide(remedied(batch, hint), [], T0)
    assert not cond.is_true(decision.status.conditions, cond.FAILED)
    assert not cond.is_true(decision.status.conditions, cond.SUCCEEDED)
    assert decision.create_pod is not None
    assert resume_index(decision.status) + 1 == hint.item
