"""``resumable describe NAME``: a batch's checkpoint, workers, restarts, skipped items, events.

Item positions are shown 1-based, as every message names them; events are this
batch's only (by uid: a deleted batch's events outlive it under the same name).
A batch with spec.window also shows its window and the time left in it (or until
it opens), worked out by the operator's own window arithmetic
(:mod:`resumable_core.windows`), and a recurring batch its last runs.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from resumable.v1alpha1 import ResumableBatch
from resumable_cli import kube, output
from resumable_core.times import format_time
from resumable_core.windows import window_state


def cmd_describe(args: argparse.Namespace) -> int:
    """Checkpoint, restarts, skipped items, conditions and recent events."""
    api = kube.connect(args)
    ns = kube.namespace(args)
    obj = kube.get_batch(api, ns, args.name)
    batch = ResumableBatch.model_validate(obj)
    st, cp = batch.status, batch.status.checkpoint
    print(f"Name:        {args.name}\nNamespace:   {ns}\nPhase:       {st.phase}")
    print(f"Progress:    {st.progress}\nRestarts:    {st.restarts} (+{st.disruptions} disruptions)")
    if st.last_failure:
        print(f"Last end:    {st.last_failure}" + (f" at {st.failed_at}" if st.failed_at else ""))
    print(f"Run ID:      {st.run_id or batch.spec.run_id or '(none)'}")
    print(f"Active pod:  {st.active_pod or '(none)'}")
    for line in window_lines(batch, datetime.now(UTC)):
        print(line)
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
    if st.workers:
        print(f"Workers:     {len(st.workers)} (spec.parallelism {batch.spec.parallelism})")
        output.print_table(
            [["SLOT", "ATTEMPT", "POD", "CHUNK", "DONE", "RESTARTS", "NEXT TRY"]]
            + [
                [
                    str(w.slot),
                    str(w.attempt),
                    w.pod(batch.metadata.name) or ("(done)" if w.idle else "(waiting)"),
                    output.one_based(w.claim) if w.claim else "-",
                    output.one_based(w.done) if w.done else "-",
                    str(w.restarts),
                    w.retry_after or "-",
                ]
                for w in st.workers
            ]
        )
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


def window_lines(batch: ResumableBatch, now: datetime) -> list[str]:
    """The window, where ``now`` stands in it, and a recurring batch's last runs."""
    window = batch.spec.window
    if window is None:
        return []
    margin = f", the worker stops {window.stop_before} before its end" if window.stop_before else ""
    lines = [f"Window:      {window.schedule} for {window.duration} ({window.time_zone}){margin}"]
    state = window_state(window, now)
    if state.open:
        if state.closes_at is None:
            lines.append("  Now:       open (the windows overlap without end)")
        else:
            left = output.duration((state.closes_at - now).total_seconds())
            lines.append(
                f"  Now:       open; the worker stops at {format_time(state.closes_at)} "
                f"({left} left)"
            )
    elif state.opens_at is not None:
        wait = output.duration((state.opens_at - now).total_seconds())
        lines.append(f"  Now:       closed; it opens at {format_time(state.opens_at)} (in {wait})")
    else:
        lines.append("  Now:       closed; no window is to come")
    if window.recurrence is not None:
        lines.append(
            f"  Runs:      a new run at each opening; concurrencyPolicy "
            f"{window.recurrence.concurrency_policy}"
        )
        history = batch.status.history
        lines.append("History:" + ("" if history else " (none)"))
        rows = [
            [h.run_id, h.result, h.progress, f"{h.restarts} restart(s)", h.ended_at]
            for h in history
        ]
        lines.extend(output.table_lines(rows))
    return lines
