"""The SDK's Kubernetes store against a real kube-apiserver (no operator, no pods).

A ResumableBatch is created in the test namespace; the operator's first status
write (the fencing token: checkpoint attempt 1, conditions, the active pod) is
made the way the operator makes it, with its own ``decide`` and
``status_patch``; then a :class:`resumable.Run` on a :class:`KubeStore` works
the batch in this process. What the real server must show: progress "N/T",
completed ranges and the runtime context in status; an older attempt's write
refused by the JSON patch ``test`` (422) with status unchanged; a position that
never moves backwards; and a status that stays a few KB, whatever the size of
the batch.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from workers import expected_output, start_worker, worker_env

import resumable
from resumable._kube import KubeStore
from resumable.errors import FencedError
from resumable.kubeapi import JSON_PATCH, ApiError, KubeApi, batch_path
from resumable.v1alpha1 import Checkpoint, CheckpointPolicy, ResumableBatch
from resumable_core.objects import status_patch
from resumable_core.reconcile import decide


def create_batch(api: KubeApi, namespace: str, name: str, total: int) -> dict[str, Any]:
    """POST a ResumableBatch (the worker command is never run here)."""
    manifest = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": total,
            "template": {
                "spec": {
                    "containers": [{"name": "worker", "image": "worker:dev", "command": ["true"]}]
                }
            },
        },
    }
    created: dict[str, Any] = api.request("POST", batch_path(namespace), body=manifest)
    return created


def get(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = api.request("GET", batch_path(namespace, name))
    return obj


def status_of(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(api, namespace, name).get("status") or {})


def patch_status(api: KubeApi, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
    """A JSON patch of the status subresource."""
    path = batch_path(namespace, name, status=True)
    api.request("PATCH", path, body=ops, content_type=JSON_PATCH)


def work_through(items: Iterator[resumable.Item[int]]) -> None:
    """Process the rest of a run's items."""
    for item in items:
        with item:
            item.output = item.value


def operator_starts_first_attempt(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    """The operator's first reconcile of a new batch: its status write, nothing else."""
    raw = get(api, namespace, name)
    decision = decide(ResumableBatch.model_validate(raw), [], datetime.now(UTC))
    new = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    patch_status(api, namespace, name, status_patch(raw.get("status"), new))
    return status_of(api, namespace, name)


def operator_starts_attempt(api: KubeApi, namespace: str, name: str, attempt: int) -> None:
    """The operator records a newer attempt (fenced on the attempt it read), as on a restart."""
    old = status_of(api, namespace, name)
    new = json.loads(json.dumps(old))
    new["checkpoint"]["attempt"] = attempt
    patch_status(api, namespace, name, status_patch(old, new))


def make_run(
    api: KubeApi,
    namespace: str,
    name: str,
    root: Path,
    *,
    attempt: int | None = 1,
    policy: CheckpointPolicy | None = None,
    total: int | None = None,
) -> resumable.Run:
    settings = resumable.Settings(
        batch_name=name,
        namespace=namespace,
        store="kube",
        directory=root,
        attempt=attempt,
        total_items=total,
        worker_id=f"test-worker-{attempt}",
        policy=policy or CheckpointPolicy(every_items=5, min_interval_seconds=0),
        handle_signals=False,
    )
    return resumable.Run(
        settings,
        KubeStore(api, namespace, name),
        resumable.DirectoryOutputs(root / "outputs"),
        resumable.DirectoryOutputs(root / "steps"),
    )


def test_status_starts_empty_and_the_operators_first_write_is_the_fencing_token(
    api: KubeApi, namespace: str
) -> None:
    created = create_batch(api, namespace, "fresh", 30)
    assert not created.get("status")
    status = operator_starts_first_attempt(api, namespace, "fresh")
    cp = status["checkpoint"]
    assert cp["attempt"] == 1
    assert cp["nextIndex"] == 0
    assert cp["completed"] == ""
    assert status["activePod"] == "fresh-1"
    assert status["progress"] == "0/30"
    assert {c["type"] for c in status["conditions"]} >= {"Succeeded", "Failed", "Progressing"}


def test_a_run_shows_progress_completed_ranges_and_context_in_status(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    create_batch(api, namespace, "progress", 30)
    operator_starts_first_attempt(api, namespace, "progress")
    seen: dict[str, dict[str, Any]] = {}

    every5 = CheckpointPolicy(every_items=5, every_seconds=3600, min_interval_seconds=0)
    run = make_run(api, namespace, "progress", tmp_path / "a1", policy=every5)
    for item in run.items(list(range(30)), errors="continue"):
        if item.index == 18:
            seen["mid"] = status_of(api, namespace, "progress")
        with item:
            if item.index == 7:
                raise ValueError("item 8 is malformed")
            item.output = item.value * 2
            item.add_usage(tokens=100, cost_usd=0.001)
            run.context["last"] = item.index

    # Mid-run: written after every 5 items, the failed one counted among them (not
    # a write of its own): after indices 4, 9 and 14. Item 8 (index 7) failed and
    # is a gap in the completed ranges.
    mid = seen["mid"]
    assert mid["progress"] == "14/30"
    assert mid["checkpoint"]["completed"] == "0-6,8-14"
    assert mid["checkpoint"]["nextIndex"] == 7
    assert mid["checkpoint"]["lastErrorIndex"] == 7
    assert mid["checkpoint"]["lastError"] == "ValueError: item 8 is malformed"

    # The attempt's end: everything but item 8 done, the position at item 8.
    end = status_of(api, namespace, "progress")
    cp = end["checkpoint"]
    assert end["progress"] == "29/30"
    assert cp["completed"] == "0-6,8-29"
    assert cp["nextIndex"] == 7
    assert cp["itemsDone"] == 29
    assert cp["finished"] is False
    assert cp["attempt"] == 1
    assert cp["totalItems"] == 30
    assert cp["tokens"] == 2900
    assert cp["costUsd"] == pytest.approx(0.029)
    context = cp["context"]
    assert context["attempt"] == 1
    assert context["workerId"] == "test-worker-1"
    assert context["taskId"] == f"{namespace}/progress"
    assert context["user"] == {"last": 29}
    assert context["iteration"] == 30  # 29 commits and one error
    assert cp["updatedAt"].endswith("Z")
    assert end["activePod"] == "progress-1"  # the operator's fields are left alone
    assert {c["type"] for c in end["conditions"]} >= {"Succeeded", "Failed"}

    # Attempt 2 (the operator records it first) does only item 8 and finishes.
    operator_starts_attempt(api, namespace, "progress", 2)
    run2 = make_run(api, namespace, "progress", tmp_path / "a2", attempt=2)
    assert run2.resumed_from == 7
    assert run2.context == {"last": 29}
    done = []
    for item in run2.items(list(range(30)), errors="continue"):
        with item:
            done.append(item.index)
            item.output = item.value * 2
    assert done == [7]
    final = status_of(api, namespace, "progress")
    assert final["progress"] == "30/30"
    assert final["checkpoint"]["finished"] is True
    assert final["checkpoint"]["itemsDone"] == 30
    assert final["checkpoint"]["nextIndex"] == 0
    assert final["checkpoint"]["completed"] == ""
    assert final["checkpoint"]["context"]["attempt"] == 2


def test_an_older_attempts_write_is_fenced_and_leaves_status_unchanged(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    create_batch(api, namespace, "fenced", 40)
    operator_starts_first_attempt(api, namespace, "fenced")
    run = make_run(api, namespace, "fenced", tmp_path)
    items = run.items(list(range(40)))
    for item in items:
        with item:
            item.output = item.value
        if item.index == 9:
            break  # 10 items done and saved (every 5)
    operator_starts_attempt(api, namespace, "fenced", 2)
    before = get(api, namespace, "fenced")
    assert before["status"]["checkpoint"]["nextIndex"] == 10

    # The server itself refuses the old attempt's JSON patch: the test op fails (422).
    old_write = [
        {"op": "test", "path": "/status/checkpoint/attempt", "value": 1},
        {"op": "replace", "path": "/status/checkpoint/nextIndex", "value": 15},
    ]
    with pytest.raises(ApiError) as refused:
        patch_status(api, namespace, "fenced", old_write)
    assert refused.value.status == 422

    # And the SDK turns it into FencedError naming both attempts.
    with pytest.raises(FencedError, match="attempt 1 was replaced by attempt 2"):
        work_through(items)
    after = get(api, namespace, "fenced")
    assert after["status"] == before["status"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    run.close()  # fenced: writes nothing more
    assert (
        get(api, namespace, "fenced")["metadata"]["resourceVersion"]
        == (before["metadata"]["resourceVersion"])
    )


def test_the_position_never_moves_backwards(api: KubeApi, namespace: str, tmp_path: Path) -> None:
    create_batch(api, namespace, "forward", 20)
    operator_starts_first_attempt(api, namespace, "forward")
    run = make_run(api, namespace, "forward", tmp_path)
    items = run.items(list(range(20)))
    for item in items:
        with item:
            item.output = item.value
        if item.index == 9:
            break
    run.checkpoint()
    before = get(api, namespace, "forward")
    assert before["status"]["checkpoint"]["nextIndex"] == 10

    # A write of the same attempt that still expects an older position (a
    # delayed duplicate, a second process with the same token) is refused.
    store = KubeStore(api, namespace, "forward")
    stale = Checkpoint(next_index=5, completed="0-4", attempt=1, items_done=5, total_items=20)
    with pytest.raises(FencedError, match="the position moved to 10 \\(expected 5\\)"):
        store.save_checkpoint(stale, progress="5/20", expect_attempt=1, expect_next=5)
    with pytest.raises(FencedError, match="the position moved to 10 \\(expected 0\\)"):
        store.save_checkpoint(stale, progress="5/20", expect_attempt=1, expect_next=0)
    after = get(api, namespace, "forward")
    assert after["status"] == before["status"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # The run itself goes on from 10.
    work_through(items)
    final = status_of(api, namespace, "forward")["checkpoint"]
    assert final["finished"] is True
    assert final["itemsDone"] == 20


def test_a_worker_started_by_hand_claims_a_fresh_batch(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    # No operator: the SDK takes attempt 1 itself with an `add /status` of just
    # the attempt; the server's CRD defaults fill in nextIndex, which the next
    # write's `test` op needs.
    create_batch(api, namespace, "byhand", 12)
    run = make_run(api, namespace, "byhand", tmp_path, attempt=None)
    assert run.attempt == 1
    assert status_of(api, namespace, "byhand")["checkpoint"]["nextIndex"] == 0
    for item in run.items(list(range(12))):
        with item:
            item.output = item.value
    cp = status_of(api, namespace, "byhand")["checkpoint"]
    assert cp["finished"] is True
    assert cp["itemsDone"] == 12
    assert cp["attempt"] == 1


def test_a_worker_that_leaves_mid_batch_saves_its_outputs_and_position_on_the_way_out(
    api: KubeApi, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    # A pod's worker: Kubernetes store, outputs on a volume, a policy that never
    # writes on its own. It breaks out of its loop after item 5 with the iterator
    # still referenced, so only the run's exit handler can save; it must still
    # find the output directory open.
    create_batch(api, namespace, "exits", 20)
    operator_starts_first_attempt(api, namespace, "exits")
    volume = tmp_path / "volume"
    env = worker_env(
        tmp_path / "unused", tmp_path / "exec.log",
        KUBECONFIG=str(kubeconfig), RESUMABLE_STORE="kube", RESUMABLE_NAMESPACE=namespace,
        RESUMABLE_BATCH_NAME="exits", RESUMABLE_ATTEMPT="1", RESUMABLE_OUTPUT_DIR=str(volume),
        RESUMABLE_CHECKPOINT=json.dumps({"everySeconds": 3600, "minIntervalSeconds": 3600}),
        WORKER_ITEMS="20", WORKER_DELAY="0", WORKER_BREAK_AFTER="5",
    )  # fmt: skip
    proc = start_worker(env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4, out
    assert "Exception ignored" not in out
    cp = status_of(api, namespace, "exits")["checkpoint"]
    assert (cp["completed"], cp["nextIndex"], cp["attempt"]) == ("0-4", 5, 1)
    outputs = sorted((volume / "outputs").glob("*.json"))
    assert [json.loads(path.read_text())["output"] for path in outputs] == [
        expected_output(index) for index in range(5)
    ]
    assert not (tmp_path / "unused").exists()  # the Kubernetes store wrote no local status


def test_status_of_a_finished_10000_item_run_stays_under_4_kb(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    total = 10_000
    create_batch(api, namespace, "large", total)
    operator_starts_first_attempt(api, namespace, "large")
    run = make_run(api, namespace, "large", tmp_path, policy=CheckpointPolicy(every_items=1000))
    for item in run.items(list(range(total))):
        with item:
            item.add_usage(tokens=1234, cost_usd=0.0037)
    status = status_of(api, namespace, "large")
    assert status["checkpoint"]["finished"] is True
    assert status["checkpoint"]["itemsDone"] == total
    assert status["progress"] == f"{total}/{total}"
    size = len(json.dumps(status, separators=(",", ":")))
    print(f"serialised status of a finished {total}-item run: {size} bytes")
    assert size < 4096, f"status is {size} bytes: {json.dumps(status, indent=1)}"
    # Pretty-printed (as kubectl shows it) it is still small.
    assert len(json.dumps(status, indent=2)) < 4096


def test_a_batch_deleted_and_created_again_never_gets_the_old_ones_step_results(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    # The output volume outlives the batch object; the new object has a new uid.
    create_batch(api, namespace, "again", 4)
    old = make_run(api, namespace, "again", tmp_path, attempt=None)
    assert old.step("research", lambda: "about document a") == "about document a"
    old._closed = True  # failed, then deleted: no flush now or at exit
    atexit.unregister(old._atexit)
    api.request("DELETE", batch_path(namespace, "again"))
    create_batch(api, namespace, "again", 4)
    calls: list[str] = []

    def research() -> str:
        calls.append("research")
        return "about document w"

    new = make_run(api, namespace, "again", tmp_path, attempt=None)
    assert new.step("research", research) == "about document w"
    assert calls == ["research"]
