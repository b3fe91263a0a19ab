"""How an ended batch can go on: one rule behind every "how to go on" hint.

A batch that has succeeded or failed does nothing more until someone acts, and
what they can do is the reconciler's rule (:mod:`resumable_core.policy.reopen`): a
batch failed by a never-retry exit code, a poison item or a refused worker pod
goes on from its checkpoint once its spec is edited; one that spent its restarts,
once ``spec.retry.maxRestarts`` is raised above them; any other, and a batch that
succeeded, only by a clean rerun from item 1 (a new ``spec.runId``). It goes on
from :func:`~resumable_core.progress.resume_index`, the first item neither
completed nor skipped, so a skipped poison item is not named as the place
to go on from.

Called by :mod:`resumable_cli`: by ``resumable run`` when the local state says the
batch already ended, and by ``resumable suspend``/``resume`` of a cluster batch that
ended. Each words the hint for its own surface; which way, and from which item,
comes from :func:`resume_hint` alone. Pure: it reads only its arguments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from resumable.v1alpha1 import ResumableBatchSpec, ResumableBatchStatus
from resumable_core import conditions as cond
from resumable_core.policy.reopen import REOPENED_BY_SPEC_EDIT
from resumable_core.progress import resume_index

#: Phases after which nothing happens until someone acts: no new worker pod comes.
SETTLED_PHASES = ("Succeeded", "Failed", "Suspended")


class Way(enum.Enum):
    """How an ended batch goes on."""

    #: It succeeded: only a rerun (a new spec.runId) starts it again, from item 1.
    RERUN = "rerun"
    #: Failed by an exit code, a poison item or a refused pod: an edited spec goes on.
    EDIT_SPEC = "edit-spec"
    #: Out of restarts: a spec.retry.maxRestarts above them goes on.
    RAISE_MAX_RESTARTS = "raise-max-restarts"
    #: Out of restarts, and spec.retry.maxRestarts is above them already: the
    #: reconciler goes on once it sees that.
    RESTARTS_RAISED = "restarts-raised"
    #: Failed by something no edit reopens: only a rerun, from item 1.
    START_OVER = "start-over"


@dataclass(frozen=True)
class ResumeHint:
    """What can make an ended batch go on, and from where."""

    phase: str  # "Succeeded" or "Failed"
    way: Way
    item: int  # 1-based: the item it goes on from (1 for a rerun)
    reason: str  # the Failed condition's reason ("" when it succeeded or has none)
    message: str  # the Failed condition's message, as stored
    restarts: int
    max_restarts: int


def ended_phase(status: ResumableBatchStatus) -> str:
    """The phase of a batch that has ended ("Succeeded" or "Failed"), else ""."""
    if cond.is_true(status.conditions, cond.SUCCEEDED):
        return "Succeeded"
    if cond.is_true(status.conditions, cond.FAILED):
        return "Failed"
    return status.phase if status.phase in ("Succeeded", "Failed") else ""


def resume_hint(spec: ResumableBatchSpec, status: ResumableBatchStatus) -> ResumeHint | None:
    """How the batch can go on, or None when it has not ended (running, suspended...).

    For a batch out of restarts whose item 5 was skipped as poison::

        hint = resume_hint(batch.spec, batch.status)
        hint.way, hint.item  # (Way.RAISE_MAX_RESTARTS, 6)
    """
    phase = ended_phase(status)
    if not phase:
        return None
    limit = spec.retry.max_restarts
    if phase == "Succeeded":
        return ResumeHint(phase, Way.RERUN, 1, "", "", status.restarts, limit)
    failed = cond.find(status.conditions, cond.FAILED)
    reason = failed.reason if failed is not None else ""
    message = failed.message if failed is not None else ""
    if reason in REOPENED_BY_SPEC_EDIT:
        way = Way.EDIT_SPEC
    elif reason == cond.REASON_MAX_RESTARTS:
        way = Way.RESTARTS_RAISED if limit > status.restarts else Way.RAISE_MAX_RESTARTS
    else:
        way = Way.START_OVER
    item = 1 if way is Way.START_OVER else resume_index(status) + 1
    return ResumeHint(phase, way, item, reason, message, status.restarts, limit)
