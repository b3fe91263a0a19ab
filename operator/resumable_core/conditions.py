"""Conditions of a ResumableBatch: an idempotent setter, and lookups.

Conditions are the API (Kubernetes api-conventions); ``status.phase`` is only a
display column derived from them. :func:`set_condition` keeps
``lastTransitionTime`` when only the reason or message changes and reports
whether anything changed, so reconciling twice writes nothing the second time.
The types and reasons are defined in :mod:`resumable.constants` and re-exported
here for the code that reads them as ``cond.FAILED``.
"""

from __future__ import annotations

from typing import Literal

from resumable.constants import (
    CONDITION_TYPES,
    FAILED,
    PROGRESSING,
    REASON_BACKOFF,
    REASON_COMPLETED,
    REASON_MAX_RESTARTS,
    REASON_NEVER_RETRY,
    REASON_NOT_FINISHED,
    REASON_NOT_SUSPENDED,
    REASON_OUTSIDE_WINDOW,
    REASON_POD_CREATE_FAILED,
    REASON_POD_CREATE_RETRYING,
    REASON_POD_CREATED,
    REASON_POISON,
    REASON_RECONCILING,
    REASON_RERUN,
    REASON_RESTARTS_RAISED,
    REASON_RESUMED,
    REASON_RETRY_SKIPPED,
    REASON_RUNNING,
    REASON_SCHEDULED_RUN,
    REASON_SPEC_CHANGED,
    REASON_START_FAILED,
    REASON_SUSPENDED,
    REASON_TOTAL_ITEMS_MISMATCH,
    REASON_USAGE_ERROR,
    REASON_WINDOW_OPEN,
    REASON_WORKER_COUNT,
    SUCCEEDED,
    SUSPENDED,
    TOTAL_ITEMS_MISMATCH,
)
from resumable.v1alpha1 import Condition

#: The four conditions every batch has, in the order status lists them.
ALL_TYPES = CONDITION_TYPES

__all__ = [
    "ALL_TYPES",
    "FAILED",
    "PROGRESSING",
    "REASON_BACKOFF",
    "REASON_COMPLETED",
    "REASON_MAX_RESTARTS",
    "REASON_NEVER_RETRY",
    "REASON_NOT_FINISHED",
    "REASON_NOT_SUSPENDED",
    "REASON_OUTSIDE_WINDOW",
    "REASON_POD_CREATED",
    "REASON_POD_CREATE_FAILED",
    "REASON_POD_CREATE_RETRYING",
    "REASON_POISON",
    "REASON_RECONCILING",
    "REASON_RERUN",
    "REASON_RESTARTS_RAISED",
    "REASON_RESUMED",
    "REASON_RETRY_SKIPPED",
    "REASON_RUNNING",
    "REASON_SCHEDULED_RUN",
    "REASON_SPEC_CHANGED",
    "REASON_START_FAILED",
    "REASON_SUSPENDED",
    "REASON_TOTAL_ITEMS_MISMATCH",
    "REASON_USAGE_ERROR",
    "REASON_WINDOW_OPEN",
    "REASON_WORKER_COUNT",
    "SUCCEEDED",
    "SUSPENDED",
    "TOTAL_ITEMS_MISMATCH",
    "Status",
    "find",
    "is_true",
    "set_condition",
]

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
