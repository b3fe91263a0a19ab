"""``resumable describe NAME``: a batch's checkpoint, restarts, skipped items and events.

Item positions are shown 1-based, as every message names them; events are this
batch's only (by uid: a deleted batch's events outlive it under the same name).
"""

from __future__ import annotations

import argparse
import json

from resumable.v1alpha1 import ResumableBatch
from resumable_cli import kube, output


def cmd_describe(args: argparse.Namespace) -> int:
    """Checkpoint, restarts, skipped items, conditions and recent events."""
    api = kube.connect(args)
    ns = kube.namespace(args)
    obj = kube.get_batch(api, ns, args.name)
    batch = ResumableBatch.model_validate(obj)
    st, cp = batch.status, batch.status.checkpoint
    print(f"Name:        {args.name}\nNamespace:   {ns}\nPhase:       {st.phase}")
    print(f"Progress:    {st.progress}\nRestarts:    {st.restarts} (+{st.disruptions} disruptions)")
    print(f"Run ID:      {batch.spec.run_id or '(none)'}\nActive pod:  {st.active_pod or '(none)'}")
    print("Checkpoint:")
    if cp.finished:
        print(f"  Next item:   (finished)\n  Completed:   all ({cp.items_done} items)")
    else:
        completed = output.one_based(cp.completed)
        print(f"  Next item:   {cp.next_index + 1}\n  Completed:   {completed}")
    print(f"  Attempt:     {cp.attempt}\n  Usage:       {cp.tokens} tokens, ${cp.cost_usd:.4f}")
    print(f"  Updated:     {cp.updated_at or '-'}\n  Fingerprint: {cp.fingerprint or '-'}")
    if cp.last_error:
        where = "" if cp.last_error_index is None else f"item {cp.last_error_index + 1}: "
        print(f"  Last error:  {where}{cp.last_error}")  # no item: the run's (a usage error)
    if cp.context:
        print(f"  Context:     {json.dumps(cp.context)}")
    print("Skipped items:" + ("" if st.skipped else " (none)"))
    for s in st.skipped:
        print(f"  item {s.index + 1} after {s.attempts} attempt(s): {s.error}")
    print("Conditions:")
    output.print_table([[c.type, c.status, c.reason, c.message] for c in st.conditions])
    events = api.request(
        "GET",
        f"/api/v1/namespaces/{ns}/events",
        query={
            # By uid too: a deleted batch's events outlive it, under the same name.
            "fieldSelector": f"involvedObject.name={args.name},involvedObject.kind=ResumableBatch,"
            f"involvedObject.uid={obj['metadata']['uid']}"
        },
    ).get("items", [])
    events.sort(
        key=lambda e: (
            e.get("lastTimestamp") or e.get("eventTime") or "",
            int(e.get("metadata", {}).get("resourceVersion") or 0),
        )
    )
    print("Events:" + ("" if events else " (none)"))
    output.print_table(
        [
            [
                str(e.get("lastTimestamp") or e.get("eventTime") or ""),
                str(e.get("type", "")),
                str(e.get("reason", "")),
                str(e.get("message", "")),
            ]
            for e in events[-15:]
        ]
    )
    return 0
