"""kube-apiserver stopped for 30 s mid-run and started again on the same etcd: nothing lost.

A control plane of its own (tests/kube/controlplane.py: etcd and kube-apiserver),
with its own process kubelet and the operator as a process. Once the worker
(tests/workers.py in a pod, a checkpoint write after every item) has saved some
progress, kube-apiserver is stopped, etcd left running; 30 s later it is started
again on the same etcd, port and keys. Through the outage the worker goes on with
its items (its writes fail and are tried again later), the operator and the
kubelet lose their watches. Afterwards the batch must complete with

- the saved progress never lower than before the outage (progress lost 0),
- no item run twice, no restart (the worker never died),
- every output present once with the right content.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import KubeApi
from tests.integration.harness import Batches, OperatorProcess
from tests.kube.controlplane import ControlPlane, ControlPlaneError
from tests.kube.kubelet import ProcessKubelet
from tests.kube.plugin import unavailable
from tests.reliability.podworker import tally, worker_batch
from tests.waiting import wait_for
from tests.workers import read_log

pytestmark = pytest.mark.timeout(240)

OUTAGE = 30.0
ITEMS = 800
DELAY = 0.05  # 40 s of items: the outage starts after about 2 s, the batch ends after it


@dataclass
class Cluster:
    """A control plane of this test's own, with a kubelet and the operator."""

    controlplane: ControlPlane
    kubelet: ProcessKubelet
    operator: OperatorProcess
    batches: Batches


@pytest.fixture
def cluster(tmp_path: Path, crd_paths: list[Path]) -> Iterator[Cluster]:
    try:
        cp = ControlPlane.start(tmp_path / "controlplane")
    except (ControlPlaneError, OSError) as exc:
        unavailable(str(exc))
    try:
        cp.install_crds(crd_paths)
        cp.create_namespace("outage")
        kubelet = ProcessKubelet(cp.kubeconfig, tmp_path / "pods").start()
        try:
            operator = OperatorProcess(cp.kubeconfig, "outage", tmp_path / "operator.log")
            operator.start()
            try:
                api = KubeApi.from_environment(kubeconfig=str(cp.kubeconfig))
                yield Cluster(cp, kubelet, operator, Batches(api, "outage"))
            finally:
                operator.stop()
                print("---- operator log (tail) ----\n" + operator.log()[-4000:])
        finally:
            kubelet.stop()
    finally:
        cp.stop()


def saved(batches: Batches, name: str) -> int:
    """The items the batch's checkpoint covers."""
    checkpoint = (batches.get(name).get("status") or {}).get("checkpoint") or {}
    return int(checkpoint.get("itemsDone", 0))


def commits(log: Path) -> int:
    return sum(1 for line in read_log(log) if line[0] == "commit")


def test_apiserver_stopped_30s_mid_run_loses_no_progress_and_the_batch_completes(
    cluster: Cluster, tmp_path: Path, figure: Any
) -> None:
    cp, batches = cluster.controlplane, cluster.batches
    work = tmp_path / "work"
    work.mkdir()
    batches.create(worker_batch("outage", work, items=ITEMS, delay=DELAY))
    before = wait_for(
        lambda: saved(batches, "outage") >= 20 and saved(batches, "outage"),
        what="20 items saved",
        timeout=60,
    )
    cp.stop_apiserver()
    stopped = time.monotonic()
    done_at_stop = commits(work / "exec.log")
    try:
        time.sleep(OUTAGE)
        done_in_outage = commits(work / "exec.log") - done_at_stop
    finally:
        cp.start_apiserver()
    back = time.monotonic()
    after = saved(batches, "outage")
    obj = batches.wait_ended("outage", timeout=120)
    ended = time.monotonic()
    result = tally(work, ITEMS)
    status = obj["status"]
    figure(
        "apiserver-outage",
        f"kube-apiserver away {back - stopped:.0f} s; saved before {before}, right after "
        f"{after}; items done by the worker during the outage {done_in_outage}; progress "
        f"lost {max(0, before - after)}, items redone {result.redone_items}, restarts "
        f"{status['restarts']}, lost outputs {result.lost_outputs}; batch {status['phase']} "
        f"{ended - back:.0f} s after the restart",
        outage_seconds=round(back - stopped, 1),
        saved_before=before,
        saved_after=after,
        done_in_outage=done_in_outage,
        progress_lost=max(0, before - after),
        redone_items=result.redone_items,
        restarts=status["restarts"],
        lost_outputs=result.lost_outputs,
    )
    assert status["phase"] == "Succeeded", status
    assert after >= before
    assert done_in_outage > 0, "the worker stopped while the API server was away"
    assert (result.redone_items, result.duplicates, result.lost_outputs) == (0, 0, 0), result
    assert (status["restarts"], result.attempts) == (0, 1), status
