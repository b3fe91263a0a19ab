"""Parallel workers (spec.parallelism > 1) on the real control plane, with the operator.

Four workers claim chunks of one batch; the test SIGKILLs random ones at random
moments and checks what a user relies on: every item's output exactly once, no
item worked on by two live workers at once, each killed worker replaced alone
(no healthy worker stopped), also by a new leader when the old one died with a
worker, and a zombie of a replaced attempt neither claims nor commits. Suspend
and a deleted pod keep their meaning with four workers. The worker is
tests/parallel_worker.py; its outputs record the slot and attempt that wrote them.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from parallel_worker import SCRIPT, executions, overlapping

from resumable import claims
from resumable.errors import FencedError
from resumable.kubeapi import JSON_PATCH, KubeApi, batch_path
from resumable.v1alpha1 import Checkpoint, ResumableBatchStatus, WorkerSlot
from scenarios import PARALLELISM
from tests.integration.harness import Batches, OperatorProcess, leader_and_standby, outputs_in
from tests.waiting import wait_for

SEED = int(os.environ.get("PARALLEL_SEED", random.randrange(2**32)))


def parallel_manifest(
    name: str, workdir: Path, *, items: int, parallelism: int, delay: float = 0.02, **spec: Any
) -> dict[str, Any]:
    """A batch of tests/parallel_worker.py with ``parallelism`` workers."""
    env = {
        "WORKER_ITEMS": str(items),
        "WORKER_DELAY": str(delay),
        "WORKER_LOG": str(workdir / "executions.log"),
        "RESUMABLE_OUTPUT_DIR": str(workdir / "out"),
    }
    body: dict[str, Any] = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "retry": {"maxRestarts": 20, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": [sys.executable, str(SCRIPT)],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }
    body["spec"].update(spec)
    return body


def live_pods(batches: Batches, name: str) -> list[dict[str, Any]]:
    """The batch's pods that run now (not ending)."""
    return [
        p
        for p in batches.pods(name)
        if p.get("status", {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]


def four_workers_making_progress(batches: Batches, name: str) -> list[dict[str, Any]]:
    """Wait until four workers run and 20 items are done; their pods."""

    def ready() -> list[dict[str, Any]] | None:
        pods = live_pods(batches, name)
        status = ResumableBatchStatus.model_validate(batches.get(name).get("status") or {})
        return pods if len(pods) == 4 and claims.progress_count(status) >= 20 else None

    found: list[dict[str, Any]] = wait_for(ready, what="four workers making progress")
    return found


def slot_attempt(pod: dict[str, Any]) -> tuple[int, int]:
    labels = pod["metadata"]["labels"]
    return int(labels["resumable.dev/slot"]), int(labels["resumable.dev/attempt"])


def test_four_workers_killed_at_random_lose_nothing_and_duplicate_nothing(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    where = f"PARALLEL_SEED={SEED}"
    items = 200
    batches.create(parallel_manifest("par", tmp_path, items=items, parallelism=4, chunkSize=5))
    killed: dict[tuple[int, int], float] = {}
    for round_ in range(4):
        # Kill a random live worker once the batch has moved on a random stretch.
        target = (round_ + 1) * items // 6 + rng.randrange(items // 12)

        def ready(target: int = target) -> list[dict[str, Any]] | None:
            done = claims.progress_count(
                ResumableBatchStatus.model_validate(batches.get("par").get("status") or {})
            )
            pods = live_pods(batches, "par")
            return pods if done >= target and pods else None

        pods = wait_for(ready, what=f"progress past {target} with a live worker", timeout=60)
        victim = rng.choice(pods)
        kubelet.kill(namespace, victim["metadata"]["name"])
        killed[slot_attempt(victim)] = time.time()
    obj = batches.wait_ended("par", timeout=180)
    print("\n".join(e["message"] for e in batches.events("par")))
    status = obj["status"]
    assert batches.condition("par", "Succeeded")["status"] == "True", where  # type: ignore[index]
    assert outputs_in(tmp_path / "out") == list(range(items)), where  # every item, once
    runs = executions(tmp_path / "executions.log")
    assert not overlapping(runs, killed), where
    # Each output was written by an attempt that ran the item (never a stale copy).
    for path in (tmp_path / "out" / "outputs").glob("*.json"):
        out = json.loads(path.read_text())["output"]
        assert any(
            (r.index, r.slot, r.attempt) == (out["index"], out["slot"], out["attempt"])
            for r in runs
        ), (where, out)
    # Replaced alone: every pod not killed ended by itself, with exit 0.
    for pod in batches.pods("par"):
        if slot_attempt(pod) not in killed:
            assert pod["status"]["phase"] == "Succeeded", (where, pod["metadata"]["name"])
    assert status["restarts"] == len(killed), where
    assert status["checkpoint"]["finished"] is True
    assert status["checkpoint"]["completed"] == f"0-{items - 1}"
    # An item ran more than once only because the attempts before its last were killed
    # before their write covered it.
    tries: dict[int, list[Any]] = {}
    for r in runs:
        tries.setdefault(r.index, []).append(r)
    redone = {i: t for i, t in tries.items() if len(t) > 1}
    for index, runs_of_item in redone.items():
        assert all((r.slot, r.attempt) in killed for r in runs_of_item[:-1]), (where, index)
    row = {
        "workers": 4,
        "items": items,
        "kills": len(killed),
        "redone": len(redone),
        "lost": 0,
    }
    print("parallel kill trial:", json.dumps(row))


def test_a_new_leader_replaces_the_worker_lost_with_the_old_leader_and_only_it(
    kubeconfig: Path, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    # The leader's node is lost with one of four workers on it. The standby takes the
    # Lease, sees the dead worker from the batch's state (no event of it was ever
    # handled) and replaces that slot alone; the other three keep their pods.
    items = 300
    first, standby = leader_and_standby(kubeconfig, namespace, tmp_path)
    try:
        batches.create(parallel_manifest("lead", tmp_path, items=items, parallelism=4, delay=0.05))
        pods = four_workers_making_progress(batches, "lead")
        first.stop(sig=signal.SIGKILL)  # the leader's pod is lost: no release
        victim = next(p for p in pods if slot_attempt(p)[0] == 2)
        kubelet.kill(namespace, victim["metadata"]["name"])  # and a worker with it
        killed = {slot_attempt(victim): time.time()}
        obj = batches.wait_ended("lead", timeout=120)
        assert "leading: op-2_" in standby.log()
    finally:
        first.stop()
        standby.stop()
    assert batches.condition("lead", "Succeeded")["status"] == "True"  # type: ignore[index]
    assert outputs_in(tmp_path / "out") == list(range(items))  # every item, once
    assert not overlapping(executions(tmp_path / "executions.log"), killed)
    assert obj["status"]["restarts"] == 1  # the new leader counted the lost worker once
    # Replaced alone: slots 0, 1 and 3 ran only their first attempt, slot 2 one more
    # (ended pods are pruned to the newest few, so the events and the executions tell).
    runs = executions(tmp_path / "executions.log")
    assert {(r.slot, r.attempt) for r in runs if r.slot != 2} == {(0, 1), (1, 1), (3, 1)}
    resumed = [e["message"] for e in batches.events("lead") if e["reason"] == "Resumed"]
    assert len(resumed) == 1
    found = re.match(r"Resumed worker 2 after exit 137 \(attempt (\d+),", resumed[0])
    assert found, resumed
    replacement = int(found.group(1))
    assert {r.attempt for r in runs if r.slot == 2} <= {1, replacement}


def test_suspend_stops_all_four_workers_and_resume_finishes_each_item_once(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    items = 300
    batches.create(parallel_manifest("pause", tmp_path, items=items, parallelism=4, delay=0.05))
    pods = four_workers_making_progress(batches, "pause")
    batches.patch_spec("pause", {"suspend": True})
    batches.wait_condition("pause", "Suspended")
    ended = {}
    for pod in pods:  # each got SIGTERM, saved, and exited 143
        stopped = kubelet.wait_terminated(namespace, pod["metadata"]["name"])
        ended[slot_attempt(pod)] = time.time()
        assert stopped["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143

    def chunks_returned() -> dict[str, Any] | None:
        status: dict[str, Any] = batches.get("pause")["status"]
        return status if all(not w.get("claim") for w in status["workers"]) else None

    status = wait_for(chunks_returned, what="every stopped worker's chunk back in the pool")
    saved = claims.progress_count(ResumableBatchStatus.model_validate(status))
    assert 20 <= saved < items
    assert status["phase"] == "Suspended"
    assert not live_pods(batches, "pause")
    batches.patch_spec("pause", {"suspend": False})
    obj = batches.wait_ended("pause", timeout=120)
    assert batches.condition("pause", "Succeeded")["status"] == "True"  # type: ignore[index]
    assert (obj["status"]["restarts"], obj["status"].get("disruptions", 0)) == (0, 0)
    assert outputs_in(tmp_path / "out") == list(range(items))  # every item, once
    runs = executions(tmp_path / "executions.log")
    assert not overlapping(runs, ended)
    # Resumed at their chunks: the stopped attempts' saved items were not run again.
    assert len(runs) - len({r.index for r in runs}) <= 4  # at most the item each was on


def test_deleting_one_of_four_workers_is_a_disruption_that_fails_nothing(
    operator: OperatorProcess, batches: Batches, namespace: str, tmp_path: Path
) -> None:
    # `kubectl delete pod` on one worker, with maxRestarts 0: that worker is replaced
    # without counting a restart, the other three go on.
    items = 300
    retry = {"maxRestarts": 0, "backoff": {"initialSeconds": 0, "maxSeconds": 0}}
    batches.create(
        parallel_manifest("drop", tmp_path, items=items, parallelism=4, delay=0.05, retry=retry)
    )
    pods = four_workers_making_progress(batches, "drop")
    victim = next(p for p in pods if slot_attempt(p)[0] == 1)
    batches.api.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/pods/{victim['metadata']['name']}"
    )
    obj = batches.wait_ended("drop", timeout=120)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("lastFailure")
    assert (obj["status"]["restarts"], obj["status"]["disruptions"]) == (0, 1)
    assert outputs_in(tmp_path / "out") == list(range(items))
    runs = executions(tmp_path / "executions.log")
    assert {(r.slot, r.attempt) for r in runs if r.slot != 1} == {(0, 1), (2, 1), (3, 1)}


def test_a_zombie_of_a_replaced_attempt_can_neither_claim_nor_commit(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    from resumable._kube import KubeStore
    from resumable._slots import KubeSlots, SlotStore

    name = "zombie"
    api.request(
        "POST",
        batch_path(namespace),
        body=parallel_manifest(name, tmp_path, items=40, parallelism=2),
    )
    status = ResumableBatchStatus(workers=[WorkerSlot(slot=0, attempt=1), WorkerSlot(slot=1)])
    api.request(
        "PATCH",
        batch_path(namespace, name, status=True),
        body=[{"op": "add", "path": "/status", "value": _dump(status)}],
        content_type=JSON_PATCH,
    )
    zombie = SlotStore(
        KubeSlots(KubeStore(api, namespace, name)), slot=0, parallelism=2, chunk_size=10
    )
    zombie.claim(1)
    assert zombie.claim_chunk(Checkpoint(attempt=1, fingerprint="f"), 40) == (0, 9)
    # The operator ends attempt 1 (its pod was lost) and returns its chunk.
    current = ResumableBatchStatus.model_validate(
        api.request("GET", batch_path(namespace, name, status=True))["status"]
    )
    claims.release(current, 0)
    api.request(
        "PATCH",
        batch_path(namespace, name, status=True),
        body=[{"op": "replace", "path": "/status/workers/0", "value": _dump(current.workers[0])}],
        content_type=JSON_PATCH,
    )
    before = api.request("GET", batch_path(namespace, name, status=True))["status"]
    done = Checkpoint(attempt=1, completed="0-4", fingerprint="f")
    with pytest.raises(FencedError, match="replaced by attempt 2"):
        zombie.save_checkpoint(done, progress="", expect_attempt=1, expect_next=0)
    with pytest.raises(FencedError, match="replaced by attempt 2"):
        zombie.claim_chunk(done, 40)
    after = api.request("GET", batch_path(namespace, name, status=True))["status"]
    assert after == before  # not one write of the zombie landed
    assert "claim" not in after["workers"][0]  # its chunk is back in the pool
    pool = claims.free_chunk(ResumableBatchStatus.model_validate(after), 40, 10)
    assert pool == (0, 9)


def _two_workers(api: KubeApi, namespace: str, tmp_path: Path, name: str) -> list[Any]:
    """Slots 0 and 1 of a fresh 2-worker batch, each worker's SlotStore started."""
    from resumable._kube import KubeStore
    from resumable._slots import KubeSlots, SlotStore

    api.request(
        "POST",
        batch_path(namespace),
        body=parallel_manifest(name, tmp_path, items=40, parallelism=2),
    )
    status = ResumableBatchStatus(
        workers=[WorkerSlot(slot=0, attempt=1), WorkerSlot(slot=1, attempt=1)]
    )
    api.request(
        "PATCH",
        batch_path(namespace, name, status=True),
        body=[{"op": "add", "path": "/status", "value": _dump(status)}],
        content_type=JSON_PATCH,
    )
    stores = []
    for slot in (0, 1):
        store = SlotStore(
            KubeSlots(KubeStore(api, namespace, name)), slot=slot, parallelism=2, chunk_size=10
        )
        store.claim(1)
        stores.append(store)
    return stores


def _between_read_and_write(store: Any, action: Any) -> list[int]:
    """Run ``action`` once, right after ``store``'s next read of the batch (before its
    patch): the interleaving two workers produce by chance. Returns the read count."""
    backend = store.backend
    fetch = backend._fetch
    reads: list[int] = []

    def fetch_then_act() -> Any:
        obj = fetch()
        reads.append(1)
        if len(reads) == 1:
            action()
        return obj

    backend._fetch = fetch_then_act
    return reads


def test_another_workers_progress_write_does_not_make_a_claim_try_again(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    a, b = _two_workers(api, namespace, tmp_path, "claim-vs-progress")
    assert b.claim_chunk(Checkpoint(attempt=1, fingerprint="f"), 40) == (0, 9)
    b_done = Checkpoint(attempt=1, completed="0-3", fingerprint="f", tokens=4)
    reads = _between_read_and_write(
        a, lambda: b.save_checkpoint(b_done, progress="", expect_attempt=1, expect_next=4)
    )
    assert a.claim_chunk(Checkpoint(attempt=1, fingerprint="f"), 40) == (10, 19)
    assert len(reads) == 1  # the claim landed on its first try
    stored = api.request("GET", batch_path(namespace, "claim-vs-progress", status=True))
    workers = stored["status"]["workers"]
    assert (workers[0]["claim"], workers[1]["claim"], workers[1]["done"]) == ("10-19", "0-9", "0-3")


def test_two_claims_that_read_the_same_checkpoint_never_take_the_same_chunk(
    api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    a, b = _two_workers(api, namespace, tmp_path, "claim-race")
    reads = _between_read_and_write(
        a, lambda: b.claim_chunk(Checkpoint(attempt=1, fingerprint="f"), 40)
    )
    assert a.claim_chunk(Checkpoint(attempt=1, fingerprint="f"), 40) == (10, 19)
    assert len(reads) == 2  # refused once (b claimed in between), then read again
    stored = api.request("GET", batch_path(namespace, "claim-race", status=True))["status"]
    assert [w["claim"] for w in stored["workers"]] == ["10-19", "0-9"]
    assert stored["checkpoint"]["claims"] == 2


def _dump(value: Any) -> Any:
    return value.model_dump(by_alias=True, exclude_none=True, mode="json")


@pytest.mark.parametrize("workers", PARALLELISM, ids=lambda n: f"{n}-workers")
def test_retry_skipped_runs_only_the_skipped_item_once_its_cause_is_fixed(
    workers: int, operator: OperatorProcess, batches: Batches, tmp_path: Path
) -> None:
    body = parallel_manifest(
        "retry",
        tmp_path,
        items=40,
        parallelism=workers,
        retry={"maxItemAttempts": 2, "maxRestarts": 10, "backoff": {"initialSeconds": 0}},
    )
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "WORKER_POISON", "value": "10"})
    batches.create(body)
    status = batches.wait_ended("retry", timeout=180)["status"]
    assert status["phase"] == "Succeeded", status
    assert [s["index"] for s in status["skipped"]] == [9]
    assert outputs_in(tmp_path / "out") == [i for i in range(40) if i != 9]
    ran_before = len(executions(tmp_path / "executions.log"))
    # The poison is fixed, and the skipped item asked for again.
    container["env"] = [e for e in container["env"] if e["name"] != "WORKER_POISON"]
    batches.patch_spec("retry", {"template": body["spec"]["template"], "retrySkipped": "fixed"})

    def succeeded_again() -> dict[str, Any] | None:
        st = batches.get("retry").get("status") or {}
        ok = st.get("phase") == "Succeeded" and not st.get("skipped")
        return st if ok else None

    status = wait_for(succeeded_again, what="retry to succeed with nothing skipped", timeout=120)
    assert status["checkpoint"]["itemsDone"] == 40
    assert outputs_in(tmp_path / "out") == list(range(40))
    again = executions(tmp_path / "executions.log")[ran_before:]
    assert [r.index for r in again] == [9]  # nothing that was done ran again
    events = [e["message"] for e in batches.events("retry")]
    assert any("retrying skipped item(s) 10" in m for m in events), events
