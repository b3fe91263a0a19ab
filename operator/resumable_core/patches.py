"""The fenced status patch: how a decision's status is written, in a cluster and locally.

One builder for both executors: the operator sends the JSON patch to the API
server's status subresource (``resumable_operator.statuswriter``), the local
runner applies it to ``status.json`` with :mod:`resumable_core.jsonpatch`
(``resumable_runner.runner``). A ``test`` op that no longer matches refuses the
write in both places alike, and the executor decides again from what is there.

Two fences, on the status as it was read before deciding (and, with parallel
workers, each changed slot is tested on its own attempt and done items: see
:func:`_worker_ops`):

* always the attempt (``checkpoint.attempt``, the fencing token): a concurrent
  replica's new attempt or a rerun refuses a write judged on the old one;
* for a decision that rests on the checkpoint (it accounts for an attempt's end,
  or starts one), also the fields every worker write changes
  (:data:`FENCE_FIELDS`): a worker write since then wins, and is read again,
  instead of being buried under a status computed from the older checkpoint.
"""

from __future__ import annotations

from typing import Any

from resumable.v1alpha1 import ResumableBatchStatus
from resumable_core.decision import Decision

JsonPatch = list[dict[str, Any]]

#: Checkpoint fields every worker write changes.
FENCE_FIELDS = ("nextIndex", "finished", "updatedAt")


def status_patch(
    old: dict[str, Any] | None, new: dict[str, Any], *, fence_checkpoint: bool = False
) -> JsonPatch:
    """A JSON patch taking status ``old`` (as read) to ``new``; [] when nothing changes.

    Only changed top-level fields (and changed checkpoint fields) are written, so
    the worker's concurrent checkpoint writes are not overwritten. A status with
    no checkpoint yet is written whole. ``fence_checkpoint`` adds the
    :data:`FENCE_FIELDS` tests.
    """
    if not old or "checkpoint" not in old:
        return [{"op": "add", "path": "/status", "value": new}]
    changes = _changes(old, new)
    if not changes:
        return []
    old_cp: dict[str, Any] = old["checkpoint"] or {}
    fence = [
        {"op": "test", "path": "/status/checkpoint/attempt", "value": old_cp.get("attempt", 0)}
    ]
    if fence_checkpoint:
        fence += [
            {"op": "test", "path": f"/status/checkpoint/{name}", "value": old_cp[name]}
            for name in FENCE_FIELDS
            if name in old_cp
        ]
    return fence + changes


def decision_patch(old: dict[str, Any] | None, decision: Decision) -> JsonPatch:
    """The fenced patch writing a decision's status over ``old`` (the status it was
    decided from, as read); [] when the decision changed nothing."""
    if not decision.status_changed:
        return []
    return status_patch(
        old, dump_status(decision.status), fence_checkpoint=decision.rests_on_checkpoint
    )


def dump_status(status: ResumableBatchStatus) -> dict[str, Any]:
    """The status as the API server stores it (camelCase, no nulls)."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _changes(old: dict[str, Any], new: dict[str, Any]) -> JsonPatch:
    ops: JsonPatch = []
    for key, value in new.items():
        if key == "checkpoint":
            old_cp = old.get("checkpoint") or {}
            for sub, sub_value in value.items():
                if old_cp.get(sub) != sub_value:
                    ops.append(
                        {"op": "add", "path": f"/status/checkpoint/{sub}", "value": sub_value}
                    )
            ops.extend(
                {"op": "remove", "path": f"/status/checkpoint/{sub}"}
                for sub in old_cp
                if sub not in value
            )
        elif key == "workers" and isinstance(old.get(key), list):
            ops.extend(_worker_ops(old[key], value))
        elif old.get(key) != value:
            ops.append({"op": "add", "path": f"/status/{key}", "value": value})
    ops.extend({"op": "remove", "path": f"/status/{key}"} for key in old if key not in new)
    return ops


def _worker_ops(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> JsonPatch:
    """Write the parallel workers' slots that changed, each fenced on its own fields.

    Workers write their own slot concurrently (their ``done``, usage and
    in-flight item, tested against the slot's ``attempt``); the decision writes a
    slot only when it starts or ends one of its attempts. So each changed slot
    is written whole after ``test`` ops on its attempt and its ``done``: a worker
    write in between refuses the patch, and the executor decides again. A change
    in the number of slots rewrites the list, tested against the list as read.
    """
    if len(old) != len(new):
        return [
            {"op": "test", "path": "/status/workers", "value": old},
            {"op": "add", "path": "/status/workers", "value": new},
        ]
    ops: JsonPatch = []
    for i, (was, now) in enumerate(zip(old, new, strict=True)):
        if was == now:
            continue
        ops.extend(
            {"op": "test", "path": f"/status/workers/{i}/{name}", "value": was[name]}
            for name in ("attempt", "done")
            if name in was
        )
        ops.append({"op": "replace", "path": f"/status/workers/{i}", "value": now})
    return ops
