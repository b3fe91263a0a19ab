"""A failed batch goes on from its checkpoint when an edit may have fixed what failed it.

The work done stays done: a batch failed by a refused pod, a never-retry exit
code or a poison item reopens when the spec's :data:`FIXING_FIELDS` changed (its
:func:`spec_digest` differs from ``status.failedSpec``, recorded when it failed);
one failed by maxRestarts reopens when maxRestarts is raised. Level-based: the
spec and the status say so, whatever the event. Called by
:func:`resumable_core.reconcile.decide` before it looks at the pods.
"""

from __future__ import annotations

import hashlib
import json

from resumable import constants as names
from resumable.v1alpha1 import MAX_SKIPPED_RECORDED, ResumableBatchSpec
from resumable_core import conditions as cond
from resumable_core.context import SyncContext
from resumable_core.policy import backoff, failures
from resumable_core.progress import resume_index

#: The spec's fields an edit of which may fix a failed batch (see spec_digest).
FIXING_FIELDS: dict[str, bool | set[str]] = {
    "template": True,
    "retry": {"never_retry_exit_codes", "max_item_attempts", "on_poison_item"},
}


#: Failure reasons an edit of the spec reopens from the checkpoint, when it touched
#: what judged the failure (:func:`spec_digest`). Spent restarts reopen by their own
#: rule, a raised maxRestarts. The CLIs' hints (resumable_core.hints) say so.
REOPENED_BY_SPEC_EDIT = frozenset(
    {
        cond.REASON_NEVER_RETRY,
        cond.REASON_POISON,
        cond.REASON_POD_CREATE_FAILED,
        cond.REASON_USAGE_ERROR,
        cond.REASON_START_FAILED,
    }
)


def spec_digest(spec: ResumableBatchSpec, *, whole: bool = False) -> str:
    """A digest of what an edit may fix a failure with: the pod template, and the
    retry rules that judged it (never-retry exit codes, poison items).

    A failed batch records it (``status.failedSpec``); a spec edit reopens the batch
    only when this changed: not for suspend, ttlSecondsAfterFinished kept for a
    post-mortem, or maxRestarts (which reopens by its own rule). With ``whole``,
    of the whole spec: the local runner's stand-in for the API server's
    metadata.generation, which any spec change moves on.
    """
    include = None if whole else FIXING_FIELDS
    parts = spec.model_dump(by_alias=True, exclude_none=True, mode="json", include=include)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def failed_by(ctx: SyncContext) -> str:
    """The reason of a True Failed condition; "" when the batch has not failed."""
    failed = cond.find(ctx.status.conditions, cond.FAILED)
    return failed.reason if failed is not None and failed.status == "True" else ""


def edited_since_failure(ctx: SyncContext) -> bool:
    """True when the spec's fixing fields changed since the batch failed."""
    if ctx.status.failed_spec:
        return ctx.status.failed_spec != spec_digest(ctx.spec)
    # Failed before failedSpec was recorded: any edit.
    generation = ctx.generation
    return generation is not None and ctx.old.observed_generation != generation


def reopen_if_fixed(ctx: SyncContext) -> None:
    """Reopen a failed batch whose failure the spec as edited may no longer cause."""
    reason = failed_by(ctx)
    if reason in REOPENED_BY_SPEC_EDIT and edited_since_failure(ctx):
        if reason == cond.REASON_POD_CREATE_FAILED:
            _create_again(ctx)  # no attempt failed: the pod was never created
        else:
            _judge_again(ctx, reason)
    elif reason == cond.REASON_MAX_RESTARTS and not backoff.past_restart_limit(
        ctx.status, ctx.spec.retry
    ):
        _go_on_with_raised_restarts(ctx)


def record_failed_spec(ctx: SyncContext) -> None:
    """A batch that just failed records what its failure was judged by; a reopened
    one forgets it."""
    status = ctx.status
    if failed_by(ctx):
        status.failed_spec = status.failed_spec or spec_digest(ctx.spec)
    else:
        status.failed_spec = ""


def _reopen(ctx: SyncContext, reason: str, msg: str) -> None:
    ctx.set_condition(cond.FAILED, "False", reason, msg)
    ctx.set_condition(cond.SUCCEEDED, "Unknown", reason, names.MESSAGE_RETRYING)
    ctx.set_condition(cond.PROGRESSING, "Unknown", reason, msg)
    ctx.event("Normal", reason, msg.removesuffix("."))
    ctx.status.completion_time = ""
    ctx.status.retry_after = ""


def _create_again(ctx: SyncContext) -> None:
    """The API server refused the worker pod; the spec was edited since (a fixed
    template, say): try again from the checkpoint, not from item 1."""
    _reopen(ctx, cond.REASON_SPEC_CHANGED, names.MESSAGE_SPEC_CHANGED_CREATE_AGAIN)
    ctx.status.active_pod = ""


def _go_on_with_raised_restarts(ctx: SyncContext) -> None:
    status, retry = ctx.status, ctx.spec.retry
    msg = (
        f"spec.retry.maxRestarts raised to {retry.max_restarts} "
        f"({status.restarts} used): going on from item {resume_index(status) + 1}."
    )
    _reopen(ctx, cond.REASON_RESTARTS_RAISED, msg)
    # The attempt this starts is the restart after the failure that exhausted
    # the limit: counted, so a raise by one allows exactly one more restart.
    status.restarts += 1


def _judge_again(ctx: SyncContext, reason: str) -> None:
    """Judge the failed attempt again under the edited spec (a fixed image, an exit
    code taken off the list, onPoisonItem or maxItemAttempts changed).

    A poison item is skipped now if ``onPoisonItem`` became ``Skip``, or tried
    again (up to a raised ``maxItemAttempts``, else once: the edit may have fixed
    the worker). The next attempt is the restart after that counted failure: it
    needs the restart budget and is counted. The batch stays failed otherwise.
    """
    status, retry = ctx.status, ctx.spec.retry
    stall = status.stall
    if (
        reason == cond.REASON_POISON
        and stall is not None
        and stall.attempts >= retry.max_item_attempts
        and retry.on_poison_item == "Skip"
    ):
        if failures.skipped_list_full(status):
            _stay_failed(
                ctx,
                cond.REASON_POISON,
                f"The spec changed, but item {stall.index + 1} cannot be skipped: "
                f"{MAX_SKIPPED_RECORDED} items were skipped already.",
            )
            return
        error = failures.item_error(status, stall.index, f"worker died: {status.last_failure}")
        failures.skip_item(ctx, stall, error)
    at = resume_index(status)
    if backoff.past_restart_limit(status, retry):
        _stay_failed(
            ctx,
            cond.REASON_MAX_RESTARTS,
            f"The spec changed, but maxRestarts ({retry.max_restarts}) is exhausted: "
            f"raise spec.retry.maxRestarts to go on from item {at + 1}.",
            succeeded=True,
        )
        return
    status.restarts += 1
    _reopen(
        ctx,
        cond.REASON_SPEC_CHANGED,
        f"The spec changed since the batch failed ({reason}): going on from item "
        f"{at + 1}, restart {status.restarts}/{retry.max_restarts}.",
    )


def _stay_failed(ctx: SyncContext, reason: str, msg: str, *, succeeded: bool = False) -> None:
    """An edit that cannot reopen the batch: Failed says why (and how to go on)."""
    ctx.set_condition(cond.FAILED, "True", reason, msg)
    if succeeded:
        ctx.set_condition(cond.SUCCEEDED, "False", reason, names.MESSAGE_FAILED)
    ctx.set_condition(cond.PROGRESSING, "False", reason, msg)
    ctx.event("Warning", reason, msg.removesuffix("."))
