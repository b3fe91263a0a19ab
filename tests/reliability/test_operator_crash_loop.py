"""The operator in a crash loop: SIGKILLed and restarted again and again, never two workers.

One batch runs (tests/workers.py in pods of the process kubelet) while the
operator process is SIGKILLed and started again ten times; every other time its
worker is SIGKILLed too while no operator runs, so a restarted operator finds a
dead worker and must start the next attempt exactly once, whatever the previous
incarnation had begun. A poller reads every 20 ms both what the API server says
(the batch's pods not ended and not being deleted) and what the kubelet runs
(the processes alive): neither may ever show two workers for the batch. The
batch must complete with every output once.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Batches, OperatorProcess
from tests.kube.kubelet import ProcessKubelet
from tests.reliability.podworker import tally, worker_batch
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)

RESTARTS = 10
ITEMS = 1000
DELAY = 0.02


class Poller(threading.Thread):
    """Counts the batch's live workers every 20 ms, in the API and in the kubelet."""

    def __init__(self, batches: Batches, kubelet: ProcessKubelet, namespace: str) -> None:
        super().__init__(daemon=True)
        self.batches, self.kubelet, self.namespace = batches, kubelet, namespace
        self.polls = 0
        self.most_pods = 0  # pods not ended and not being deleted, at one moment
        self.most_processes = 0  # worker processes alive, at one moment
        self.seen: list[str] = []  # what each poll that found two saw
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            processes = [r.name for r in self.kubelet.runs(self.namespace) if r.alive]
            pods = [
                p["metadata"]["name"]
                for p in self.batches.pods("loop")
                if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")
            ]
            self.polls += 1
            self.most_pods = max(self.most_pods, len(pods))
            self.most_processes = max(self.most_processes, len(processes))
            if len(pods) > 1 or len(processes) > 1:
                self.seen.append(f"pods {pods}, processes {processes}")


def live_pod(kubelet: ProcessKubelet, namespace: str) -> str:
    """The name of the pod whose worker runs now ('' if none)."""
    alive = [r.name for r in kubelet.runs(namespace) if r.alive]
    return alive[0] if len(alive) == 1 else ""


def test_operator_killed_and_restarted_ten_times_never_runs_two_workers_at_once(
    kubeconfig: Path,
    namespace: str,
    batches: Batches,
    kubelet: ProcessKubelet,
    tmp_path: Path,
    figure: Any,
) -> None:
    rng = random.Random(RESTARTS)
    work = tmp_path / "work"
    work.mkdir()
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "op-0.log").start()
    batches.create(worker_batch("loop", work, items=ITEMS, delay=DELAY, max_restarts=20))
    poller = Poller(batches, kubelet, namespace)
    poller.start()
    workers_killed = 0
    try:
        for number in range(1, RESTARTS + 1):
            wait_for(lambda: live_pod(kubelet, namespace), what="a worker to run", timeout=60)
            time.sleep(rng.uniform(0.2, 1.0))
            phase = (batches.get("loop").get("status") or {}).get("phase")
            assert phase not in ("Succeeded", "Failed"), f"ended before restart {number}"
            operator.stop(sig=9)
            if number % 2 == 0 and (pod := live_pod(kubelet, namespace)):
                kubelet.kill(namespace, pod)  # it dies while no operator runs
                kubelet.wait_terminated(namespace, pod)
                workers_killed += 1
            time.sleep(rng.uniform(0.0, 0.5))
            operator = OperatorProcess(kubeconfig, namespace, tmp_path / f"op-{number}.log")
            operator.start()
        obj = batches.wait_ended("loop", timeout=120)
    finally:
        poller.stopping.set()
        poller.join(5)
        operator.stop()
    result = tally(work, ITEMS)
    status = obj["status"]
    figure(
        "operator-crash-loop",
        f"operator SIGKILLed and restarted {RESTARTS} times ({workers_killed} workers killed "
        f"while it was down); {poller.polls} polls: most live worker pods {poller.most_pods}, "
        f"most worker processes {poller.most_processes}; batch {status['phase']}, restarts "
        f"{status['restarts']}, lost outputs {result.lost_outputs}, items redone "
        f"{result.redone_items}",
        restarts_of_operator=RESTARTS,
        workers_killed=workers_killed,
        polls=poller.polls,
        most_pods=poller.most_pods,
        most_processes=poller.most_processes,
        lost_outputs=result.lost_outputs,
        redone_items=result.redone_items,
    )
    assert poller.seen == [], poller.seen[:5]
    assert (poller.most_pods, poller.most_processes) == (1, 1)
    assert status["phase"] == "Succeeded", status
    assert status["restarts"] == workers_killed
    assert (result.lost_outputs, result.duplicates) == (0, 0), result
    assert result.redone_items <= workers_killed, result
