"""Evicted gracefully, again and again: not one completed item is done twice.

The operator runs a batch (tests/workers.py in pods of the process kubelet) with
the default checkpoint policy (about one write a second, so a SIGKILL would lose
up to a second of items). Its worker pod is evicted three times through the
Eviction API, as ``kubectl drain`` does: the kubelet sends SIGTERM, the SDK makes
its exit write, the operator starts the next attempt, uncounted. Every item that
completed before an eviction must be covered by that exit write: no item runs
again once it committed (0 items redone), no restart is counted, and every output
is there once.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Batches, OperatorProcess
from tests.kube.kubelet import ProcessKubelet
from tests.reliability.podworker import started_by, tally, worker_batch
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

EVICTIONS = 3
ITEMS = 200
DELAY = 0.02


def reached(log: Path, pid: int, target: int) -> bool:
    return started_by(log, pid) >= target


def test_evicted_three_times_the_worker_redoes_no_completed_item(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: ProcessKubelet,
    namespace: str,
    tmp_path: Path,
    figure: Any,
) -> None:
    rng = random.Random(EVICTIONS)
    work = tmp_path / "work"
    work.mkdir()
    batches.create(worker_batch("evicted", work, items=ITEMS, delay=DELAY, checkpoint={}))
    for attempt in range(1, EVICTIONS + 1):
        pod = f"evicted-{attempt}"
        kubelet.wait_running(namespace, pod)
        proc = kubelet.run_of(namespace, pod).proc
        assert proc is not None
        target = rng.randint(10, 30)
        wait_for(
            partial(reached, work / "exec.log", proc.pid, target),
            what=f"{pod} to start {target} items",
            every=0.01,
        )
        kubelet.evict(namespace, pod)
        kubelet.wait_terminated(namespace, pod)
    obj = batches.wait_ended("evicted", timeout=90)
    result = tally(work, ITEMS)
    status = obj["status"]
    figure(
        "graceful-eviction",
        f"{EVICTIONS} evictions; completed items redone {result.committed_redone}, items in "
        f"flight run again {result.redone_items - result.committed_redone}; restarts "
        f"{status['restarts']}, disruptions {status['disruptions']}, lost outputs "
        f"{result.lost_outputs}",
        evictions=EVICTIONS,
        committed_redone=result.committed_redone,
        inflight_rerun=result.redone_items - result.committed_redone,
        restarts=status["restarts"],
        disruptions=status["disruptions"],
        lost_outputs=result.lost_outputs,
    )
    assert status["phase"] == "Succeeded", status
    assert (status["restarts"], status["disruptions"]) == (0, EVICTIONS), status
    assert result.committed_redone == 0, result
    assert (result.lost_outputs, result.duplicates, result.attempts) == (0, 0, EVICTIONS + 1)
