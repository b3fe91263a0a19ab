"""decide(): a usage error exit and a command that could not start fail the batch at once.

Both are deterministic: every retry would fail the same way, so the batch used to
burn maxRestarts and end as MaxRestartsExceeded or a poison item. Exit
EXIT_USAGE (the SDK's exit for an uncaught UsageError) fails it with reason
UsageError and the cause the worker saved; a container that ended with StartError
(its exec failed, as the kubelet reports it and as the local runner reports its
subprocess) fails it with reason StartFailed and the runtime's message. The
operator and `resumable run` share this code; the pod side is read through
objects.pod_view, as the operator reads a real pod.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_reconcile import (
    NO_BACKOFF,
    T0,
    conditions,
    failed,
    make_batch,
    saved,
    settle,
    started,
)

from resumable.constants import EXIT_USAGE
from resumable.v1alpha1 import ResumableBatch
from resumable_core import conditions as cond
from resumable_core import objects
from resumable_core.reconcile import decide

CAUSE = "FingerprintMismatchError: the item list changed since the checkpoint was written"


def generous() -> ResumableBatch:
    return started(make_batch(retry={"maxRestarts": 5, "backoff": NO_BACKOFF}))


def failed_condition(batch: ResumableBatch) -> Any:
    return next(c for c in batch.status.conditions if c.type == cond.FAILED)


def test_exit_usage_fails_at_once_with_the_cause_the_worker_saved() -> None:
    batch = generous()
    saved(batch, 6, error=CAUSE, error_index=None)  # a run-level error: no item's
    d = settle(batch, decide(batch, [failed(code=EXIT_USAGE)], T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_USAGE_ERROR)
    assert d.create_pod is None
    assert d.status.restarts == 0  # not retried although 5 restarts are left
    assert failed_condition(batch).message == (
        f"Attempt 1 ended with exit {EXIT_USAGE} (a usage error); not retried: {CAUSE}"
    )
    assert d.status.stall is None or d.status.stall.attempts == 0  # no poison count
    again = decide(batch, [failed(code=EXIT_USAGE)], T0 + timedelta(minutes=5))
    assert (again.create_pod, again.status_changed) == (None, False)


def test_exit_usage_without_a_saved_cause_says_to_read_the_log() -> None:
    batch = generous()
    saved(batch, 2, error="ValueError: item 3 broke", error_index=2)  # an item's, not the cause
    settle(batch, decide(batch, [failed(code=EXIT_USAGE)], T0))
    assert failed_condition(batch).message.endswith(
        "not retried: the worker saved no cause: see its log"
    )


def test_other_exit_codes_are_still_retried() -> None:
    batch = generous()
    saved(batch, 2)
    d = settle(batch, decide(batch, [failed(code=1)], T0))
    assert conditions(d)["Failed"] == ("False", cond.REASON_RECONCILING)
    assert d.status.restarts == 1


def pod_that_could_not_start() -> dict[str, Any]:
    """A worker pod as the API server shows it when containerd could not exec the command."""
    return {
        "metadata": {"name": "b-1", "labels": {"resumable.dev/attempt": "1"}},
        "spec": {"containers": [{"name": "worker"}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "worker",
                    "state": {
                        "terminated": {
                            "exitCode": 128,
                            "reason": "StartError",
                            "message": 'exec: "work": executable file not found in $PATH',
                        }
                    },
                }
            ],
        },
    }


def test_a_worker_that_could_not_start_fails_at_once_with_the_runtime_message() -> None:
    batch = generous()
    pod = objects.pod_view(pod_that_could_not_start())
    d = settle(batch, decide(batch, [pod], T0))
    assert conditions(d)["Failed"] == ("True", cond.REASON_START_FAILED)
    assert d.create_pod is None
    assert d.status.restarts == 0
    assert failed_condition(batch).message == (
        "Attempt 1's worker b-1 could not start (exit 128 (StartError)): "
        'exec: "work": executable file not found in $PATH; not retried: '
        "fix spec.template.spec.containers[0]"
    )


def test_a_batch_that_could_not_start_goes_on_once_its_template_is_edited() -> None:
    batch = generous()
    pod = objects.pod_view(pod_that_could_not_start())
    settle(batch, decide(batch, [pod], T0))
    batch.spec.template.spec.containers[0].command = ["python", "work.py"]
    batch.metadata.generation = 2
    d = settle(batch, decide(batch, [pod], T0 + timedelta(minutes=1)))
    assert conditions(d)["Failed"] == ("False", cond.REASON_SPEC_CHANGED)
    assert d.create_pod is not None
    assert d.create_pod.name == "b-2"
