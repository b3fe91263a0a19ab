"""Kueue admission end to end: the real Kueue manager, the operator, the process kubelet.

Kueue (built from its Go module, started by the ``kueue`` fixture) admits the
Workloads the operator makes for batches labelled ``kueue.x-k8s.io/queue-name``.
A batch waits (phase Queued) until admitted, runs on the admitted flavour, and a
batch Kueue preempts saves on SIGTERM, waits, and resumes at its item: every
output once, no restart counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios import Scenario, manifest
from tests.integration.harness import Batches, OperatorProcess, outputs_in
from tests.kube.kueue import FLAVOR_NODE_LABELS, FLAVOR_TOLERATION, Kueue
from tests.waiting import wait_for

NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0}


def queued_batch(
    name: str, out: Path, *, queue: str, items: int, delay: float, priority: str = ""
) -> dict[str, Any]:
    """A batch asking for one CPU per worker, labelled with its LocalQueue (and priority)."""
    scenario = Scenario(
        id=name,
        items=items,
        fault={},
        retry={"maxRestarts": 0, "backoff": NO_BACKOFF},
        phase="Succeeded",
        restarts=0,
    )
    body = manifest(scenario, name, env={"RESUMABLE_OUTPUT_DIR": str(out)}, delay=delay)
    labels = {"kueue.x-k8s.io/queue-name": queue}
    if priority:
        labels["kueue.x-k8s.io/priority-class"] = priority
    body["metadata"]["labels"] = labels
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "1"}}
    return body


def phase(batches: Batches, name: str) -> str:
    return str((batches.get(name).get("status") or {}).get("phase", ""))


def progress(batches: Batches, name: str) -> int:
    cp = (batches.get(name).get("status") or {}).get("checkpoint") or {}
    return int(cp.get("itemsDone", 0))


def reasons(batches: Batches, name: str) -> set[str]:
    return {e["reason"] for e in batches.events(name)}


def finished(kueue: Kueue, namespace: str) -> dict[str, str | None]:
    """Each Workload's Finished condition, by its batch."""
    return {
        w["metadata"]["labels"]["resumable.dev/batch"]: {
            c["type"]: c["status"] for c in w["status"]["conditions"]
        }.get("Finished")
        for w in kueue.workloads(namespace)
    }


def kueue_operator(kubeconfig: Path, namespace: str, tmp_path: Path) -> OperatorProcess:
    return OperatorProcess(
        kubeconfig,
        namespace,
        tmp_path / "operator.log",
        env={"RESUMABLE_OPERATOR_KUEUE": "true"},
    ).start()


def test_second_batch_waits_queued_until_the_first_ends_then_runs(
    kueue: Kueue,
    kubeconfig: Path,
    batches: Batches,
    kubelet: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    queue = kueue.queue(namespace, cpu="1")  # quota for one batch at a time
    operator = kueue_operator(kubeconfig, namespace, tmp_path)
    try:
        batches.create(queued_batch("first", tmp_path / "a", queue=queue, items=60, delay=0.05))
        wait_for(lambda: progress(batches, "first") >= 5, what="the first batch to run")
        batches.create(queued_batch("second", tmp_path / "b", queue=queue, items=20, delay=0.01))
        wait_for(lambda: phase(batches, "second") == "Queued", what="the second to be Queued")
        suspended = batches.condition("second", "Suspended")
        assert suspended is not None
        assert suspended["reason"] == "Queued", suspended
        assert batches.pods("second") == []  # no worker before admission
        assert phase(batches, "first") == "Running"
        # The first runs on the admitted flavour: its node labels and toleration.
        pod = batches.pods("first")[0]["spec"]
        assert pod["nodeSelector"] == FLAVOR_NODE_LABELS
        assert FLAVOR_TOLERATION in pod["tolerations"]
        first = batches.wait_ended("first")
        assert first["status"]["phase"] == "Succeeded"
        second = batches.wait_ended("second", timeout=120)
        assert second["status"]["phase"] == "Succeeded"
        assert outputs_in(tmp_path / "a") == list(range(60))
        assert outputs_in(tmp_path / "b") == list(range(20))
        # The operator writes the status first, then releases the Workload and posts
        # the events: a moment after the phase reads Succeeded, not before.
        wanted = {"Queued", "Admitted", "Started", "Completed"}
        wait_for(
            lambda: wanted <= reasons(batches, "second"),
            what=f"the second's events to include {sorted(wanted)}",
            timeout=15,
        )
        # Ended batches give their quota back: each Workload is Finished.
        wait_for(
            lambda: finished(kueue, namespace) == {"first": "True", "second": "True"},
            what="both Workloads to be Finished",
            timeout=15,
        )
    finally:
        operator.stop()
        print("---- operator log (tail) ----\n" + "\n".join(operator.log().splitlines()[-60:]))


def test_preempted_batch_saves_waits_and_resumes_at_its_item_with_no_restart(
    kueue: Kueue,
    kubeconfig: Path,
    batches: Batches,
    kubelet: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    queue = kueue.queue(namespace, cpu="1", preempt_lower_priority=True)
    kueue.priority_class("resumable-test-low", 10)
    kueue.priority_class("resumable-test-high", 1000)
    operator = kueue_operator(kubeconfig, namespace, tmp_path)
    low_out, high_out = tmp_path / "low", tmp_path / "high"
    try:
        batches.create(
            queued_batch(
                "low", low_out, queue=queue, items=150, delay=0.05, priority="resumable-test-low"
            )
        )
        wait_for(lambda: progress(batches, "low") >= 10, what="the low-priority batch to run")
        batches.create(
            queued_batch(
                "high", high_out, queue=queue, items=20, delay=0.01, priority="resumable-test-high"
            )
        )
        # Kueue preempts the low-priority Workload: its worker is told to stop, saves,
        # and the batch waits, Queued, while the high-priority one runs.
        wait_for(lambda: phase(batches, "low") == "Queued", what="low to be evicted")
        kubelet.wait_terminated(namespace, "low-1")
        saved = progress(batches, "low")
        assert 10 <= saved < 150
        evicted = wait_for(
            lambda: [e["message"] for e in batches.events("low") if e["reason"] == "Evicted"],
            what="an Evicted event on low",
            timeout=15,
        )
        assert len(evicted) == 1, evicted
        assert "Preempted" in evicted[0]
        # Kueue names the preemptor by its job's uid: the high-priority batch's.
        assert batches.get("high")["metadata"]["uid"] in evicted[0]
        high = batches.wait_ended("high", timeout=120)
        assert high["status"]["phase"] == "Succeeded"
        low = batches.wait_ended("low", timeout=180)
        status = low["status"]
        assert status["phase"] == "Succeeded"
        assert status["restarts"] == 0  # neither a restart nor a failure
        assert f"resuming at item {saved + 1}/150" in kubelet.read_log(namespace, "low-2")
        assert outputs_in(low_out) == list(range(150))  # every output exactly once
        assert outputs_in(high_out) == list(range(20))
        resumed = [e["message"] for e in batches.events("low") if e["reason"] == "Resumed"]
        assert resumed == [f"Resumed at item {saved + 1}/150 after eviction by Kueue (attempt 2)"]
    finally:
        operator.stop()
        print("---- operator log (tail) ----\n" + "\n".join(operator.log().splitlines()[-80:]))
