"""A replaced worker that goes on writing: none of its writes lands, the status never goes back.

The operator runs a batch (tests/workers.py in pods of the process kubelet). Its
first worker is frozen (SIGSTOP: a long GC pause, a node cut off) and its pod
reported Failed with exit 137, as a kubelet that lost track of the container
would. The operator starts attempt 2, which goes on from the checkpoint. Then the
zombie wakes up (SIGCONT) with a token that is still valid, finishes its item and
writes; and a second zombie, holding the same service account's token, keeps
writing attempt 1's checkpoints (further along, finished, at the position
attempt 1 last saved) straight through the SDK's store, twenty times. A poller
reads the batch every 20 ms throughout. Neither zombie may land a write: the
attempt, the position and the items done never move backwards, and the batch
ends with every output once.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from resumable._kube import KubeStore
from resumable.errors import FencedError
from resumable.kubeapi import KubeApi
from resumable.v1alpha1 import Checkpoint
from tests.integration.harness import Batches, OperatorProcess
from tests.integration.test_worker_privileges import worker_api
from tests.kube.kubelet import ProcessKubelet, now_rfc3339
from tests.reliability.podworker import tally, worker_batch
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ITEMS = 300
DELAY = 0.02
WRITES = 20


class StatusPoller(threading.Thread):
    """Reads the batch's checkpoint every 20 ms; notes every step backwards."""

    def __init__(self, batches: Batches, name: str) -> None:
        super().__init__(daemon=True)
        self.batches, self.name = batches, name
        self.polls = 0
        self.backwards: list[str] = []
        self.attempts: set[int] = set()
        self.stopping = threading.Event()
        self._last = (0, 0, 0)

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            self.poll()

    def poll(self) -> None:
        """Read the checkpoint once: (attempt, position, items done), compared to the last."""
        cp = (self.batches.get(self.name).get("status") or {}).get("checkpoint") or {}
        if cp.get("finished"):
            now = (cp.get("attempt", 0), 1 << 30, cp.get("itemsDone", 0))
        else:
            now = (cp.get("attempt", 0), cp.get("nextIndex", 0), cp.get("itemsDone", 0))
        self.polls += 1
        self.attempts.add(now[0])
        if any(new < old for new, old in zip(now, self._last, strict=True)):
            self.backwards.append(f"{self._last} -> {now}")
        self._last = now


def report_dead(api: KubeApi, namespace: str, pod: str) -> None:
    """Write the pod's status as a kubelet does for a container killed by SIGKILL."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/status"
    obj = api.request("GET", path)
    status = obj["status"]
    status["phase"] = "Failed"
    status["containerStatuses"][0]["ready"] = False
    status["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 137, "reason": "Error", "signal": 9, "finishedAt": now_rfc3339()}
    }
    api.request("PUT", path, body=obj)


def saved(batches: Batches, name: str) -> dict[str, Any]:
    return dict((batches.get(name).get("status") or {}).get("checkpoint") or {})


def test_a_replaced_worker_that_keeps_writing_lands_no_write_and_nothing_goes_back(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: ProcessKubelet,
    api: KubeApi,
    controlplane: Any,
    namespace: str,
    tmp_path: Path,
    figure: Any,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    batches.create(worker_batch("zombie", work, items=ITEMS, delay=DELAY))
    wait_for(lambda: saved(batches, "zombie").get("itemsDone", 0) >= 10, what="10 items saved")
    poller = StatusPoller(batches, "zombie")
    run = kubelet.run_of(namespace, "zombie-1")
    assert run.proc is not None
    os.killpg(run.proc.pid, signal.SIGSTOP)
    poller.poll()  # attempt 1's last write
    poller.start()
    frozen_at = saved(batches, "zombie")
    try:
        report_dead(api, namespace, "zombie-1")
        kubelet.wait_running(namespace, "zombie-2")
        wait_for(
            lambda: saved(batches, "zombie").get("itemsDone", 0) >= frozen_at["itemsDone"] + 10,
            what="attempt 2 to save 10 items",
        )
    finally:
        os.killpg(run.proc.pid, signal.SIGCONT)
    # The first zombie: the real worker, awake again, its token still valid.
    run.proc.wait(timeout=60)
    zombie_log = kubelet.read_log(namespace, "zombie-1")
    # The second: attempt 1's writes, again and again, with the worker's own rights.
    store = KubeStore(
        worker_api(api, controlplane, tmp_path, namespace, "zombie-worker"), namespace, "zombie"
    )
    landed = 0
    for number in range(WRITES):
        position = frozen_at["nextIndex"] + number
        checkpoint = Checkpoint(
            attempt=1,
            next_index=0 if number % 4 == 3 else position,
            completed="",
            items_done=ITEMS if number % 4 == 3 else position,
            finished=number % 4 == 3,
        )
        expect_next = frozen_at["nextIndex"] if number % 2 else position
        try:
            store.save_checkpoint(
                checkpoint,
                progress=f"{position}/{ITEMS}",
                expect_attempt=1,
                expect_next=expect_next,
                final=number % 4 == 3,
            )
        except FencedError:
            continue
        landed += 1
    obj = batches.wait_ended("zombie", timeout=90)
    poller.stopping.set()
    poller.join(5)
    result = tally(work, ITEMS)
    zombie_fenced = "FencedError" in zombie_log and "was replaced by attempt 2" in zombie_log
    figure(
        "zombie-writer",
        f"replaced worker woke up and wrote: fenced {zombie_fenced}; {WRITES} more writes of "
        f"the replaced attempt, landed {landed}; {poller.polls} polls, steps backwards "
        f"{len(poller.backwards)}; batch {obj['status']['phase']}, lost outputs "
        f"{result.lost_outputs}",
        zombie_fenced=zombie_fenced,
        writes=WRITES,
        landed=landed,
        polls=poller.polls,
        backwards=len(poller.backwards),
        lost_outputs=result.lost_outputs,
    )
    assert zombie_fenced, zombie_log[-3000:]
    assert landed == 0
    assert poller.backwards == [], poller.backwards
    assert poller.attempts >= {1, 2}, poller.attempts
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert (result.lost_outputs, result.duplicates) == (0, 0), result
