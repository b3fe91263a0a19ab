"""Conditions of a ResumableBatch: the types, the reasons, and an idempotent setter.

Conditions are the API (Kubernetes api-conventions); ``status.phase`` is only a
display column derived from them. :func:`set_condition` keeps
``lastTransitionTime`` when only the reason or message changes and reports
whether anything changed, so reconciling twice writes nothing the second time.
"""

from __future__ import annotations

from typing import Literal

from resumable.v1alpha1 import Condition

SUCCEEDED = "Succeeded"
FAILED = "Failed"
SUSPENDED = "Suspended"
PROGRESSING = "Progressing"
ALL_TYPES = (PROGRESSING, SUSPENDED, SUCCEEDED, FAILED)
#: Present (True) only while the worker's item count differs from spec.totalItems.
TOTAL_ITEMS_MISMATCH = "TotalItemsMismatch"

# Reasons, CamelCase.
REASON_RECONCILING = "Reconciling"
REASON_POD_CREATED = "PodCreated"
REASON_RUNNING = "Running"
REASON_BACKOFF = "BackoffWaiting"
REASON_RESUMED = "Resumed"
REASON_COMPLETED = "Completed"
REASON_MAX_RESTARTS = "MaxRestartsExceeded"
REASON_NEVER_RETRY = "NeverRetryExitCode"
REASON_POISON = "PoisonItem"
REASON_SUSPENDED = "SuspendedBySpec"
REASON_NOT_SUSPENDED = "NotSuspended"
REASON_RERUN = "RerunRequested"
REASON_NOT_FINISHED = "NotFinished"
REASON_RESTARTS_RAISED = "MaxRestartsRaised"
#: The API server refused the worker pod (or its ServiceAccount, Role, RoleBinding).
REASON_POD_CREATE_FAILED = "PodCreateFailed"
#: Progressing while a refusal that may pass (403, 429, 5xx) is retried: no pod yet.
REASON_POD_CREATE_RETRYING = "PodCreateRetrying"
#: The Warning event, and the condition's reason, when the counts differ.
REASON_TOTAL_ITEMS_MISMATCH = "TotalItemsMismatch"
REASON_WORKER_COUNT = "WorkerCountDiffers"
#: A batch failed by a refused pod, a never-retry exit code or a poison item goes
#: on from its checkpoint once its spec is edited.
REASON_SPEC_CHANGED = "SpecChanged"

Status = Literal["True", "False", "Unknown"]


def find(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    """True when the condition is present with status True."""
    cond = find(conditions, type_)
    return cond is not None and cond.status == "True"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: Status,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> bool:
    """Set one condition in place; return True if anything changed."""
    current = find(conditions, type_)
    if current is None:
        conditions.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now,
            )
        )
        conditions.sort(key=lambda c: ALL_TYPES.index(c.type) if c.type in ALL_TYPES else 99)
        return True
    changed = False
    if current.status != status:
        current.status = status
        current.last_transition_time = now
        changed = True
    for attr, value in (
        ("reason", reason),
        ("message", message),
        ("observed_generation", generation),
    ):
        if getattr(current, attr) != value:
            setattr(current, attr, value)
            changed = True
    return changed
