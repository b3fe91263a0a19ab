"""The operator end to end on the real control plane, with the process kubelet running pods.

Every test applies a ResumableBatch, lets the operator (a real subprocess) run it,
injects a fault, and checks what a user would: conditions, restarts, events,
`kubectl get rb`, and the outputs on disk, each present exactly once.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import ApiError, KubeApi, batch_path
from scenarios import PARALLELISM, SCENARIOS, Scenario, manifest
from tests.integration.harness import Batches, OperatorProcess, leader_and_standby, outputs_in
from tests.waiting import wait_for


def batch_manifest(
    scenario: Scenario, name: str, out: Path, *, delay: float = 0.005, **spec: Any
) -> dict[str, Any]:
    body = manifest(scenario, name, env={"RESUMABLE_OUTPUT_DIR": str(out)}, delay=delay)
    body["spec"].update(spec)
    return body


LONG = Scenario(
    id="long",
    items=150,
    fault={},
    retry={"maxRestarts": 3, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
    phase="Succeeded",
    restarts=0,
    outputs=150,
)


def progress(batches: Batches, name: str) -> int:
    cp = (batches.get(name).get("status") or {}).get("checkpoint") or {}
    return int(cp.get("itemsDone", 0))


def test_killed_after_item_20_the_new_pod_resumes_at_21(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: Any,
    kubectl: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    scenario = SCENARIOS[0]
    out = tmp_path / "out"
    batches.create(batch_manifest(scenario, "recovery", out))
    obj = batches.wait_ended("recovery")
    status = obj["status"]
    assert batches.condition("recovery", "Succeeded")["status"] == "True"  # type: ignore[index]
    assert status["restarts"] == 1
    assert status["checkpoint"]["finished"] is True
    assert status["checkpoint"]["nextIndex"] == 0
    assert "resuming at item 21/50" in kubelet.read_log(namespace, "recovery-2")
    assert outputs_in(out) == list(range(50))  # all 50, each once
    messages = [e["message"] for e in batches.events("recovery")]
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in messages
    table = kubectl("get", "rb", "recovery", "-n", namespace, check=True).stdout
    assert "50/50" in table
    assert "Succeeded" in table
    described = kubectl("get", "events", "-n", namespace, check=True).stdout
    assert "Resumed at item 21/50" in described
    pods = batches.pods("recovery")
    assert [p["metadata"]["name"] for p in pods] == ["recovery-1", "recovery-2"]
    assert pods[1]["spec"]["containers"][0]["env"][-1]["name"].startswith("RESUMABLE_")
    env = {e["name"]: e.get("value") for e in pods[1]["spec"]["containers"][0]["env"]}
    assert env["RESUMABLE_START_INDEX"] == "20"
    assert env["RESUMABLE_ATTEMPT"] == "2"
    metrics = operator.metrics()
    assert 'resumable_restarts_total{reason="Error"} 1.0' in metrics
    assert 'resumable_batches{condition="Succeeded"} 1.0' in metrics
    assert "resumable_resume_seconds_count 1.0" in metrics


@pytest.mark.parametrize(
    ("scenario", "workers"),
    [
        pytest.param(s, n, id=f"{s.id}-{n}-workers")
        for s in SCENARIOS
        for n in PARALLELISM
        # One worker, killed after item 20: the first test here runs it, and checks more.
        if (s, n) != (SCENARIOS[0], 1)
    ],
)
def test_operator_meets_scenario(
    scenario: Scenario, workers: int, operator: OperatorProcess, batches: Batches, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(scenario, "scenario", out, parallelism=workers))
    obj = batches.wait_ended("scenario")
    status = obj["status"]
    assert status["phase"] == scenario.phase, status
    lowest, highest = scenario.restarts_with(workers)
    assert lowest <= status["restarts"] <= highest, status
    assert tuple(s["index"] + 1 for s in status.get("skipped", [])) == scenario.skipped
    if scenario.reason:
        failed = batches.condition("scenario", "Failed")
        assert failed is not None
        assert failed["reason"] == scenario.reason
    if scenario.outputs is not None:
        skipped = {n - 1 for n in scenario.skipped}
        assert outputs_in(out) == sorted(set(range(scenario.items)) - skipped)
    # Every worker ends: the others are stopped gracefully once one ended the batch.
    wait_for(
        lambda: (
            not [
                p
                for p in batches.pods("scenario")
                if p.get("status", {}).get("phase") in ("Pending", "Running")
            ]
        ),
        what="no live worker pod",
        timeout=60,
    )


def test_eviction_is_not_counted_against_max_restarts(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(LONG, "evicted", out, retry={"maxRestarts": 0}, delay=0.05))
    wait_for(lambda: progress(batches, "evicted") >= 10, what="progress")
    kubelet.evict(namespace, "evicted-1")
    obj = batches.wait_ended("evicted")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 0
    assert obj["status"]["disruptions"] == 1
    assert outputs_in(out) == list(range(150))
    assert "resuming at item" in kubelet.read_log(namespace, "evicted-2")


def test_suspend_stops_the_worker_and_resume_continues_from_the_checkpoint(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(LONG, "pausable", out, delay=0.05))
    wait_for(lambda: progress(batches, "pausable") >= 10, what="progress")
    batches.patch_spec("pausable", {"suspend": True})
    batches.wait_condition("pausable", "Suspended")
    kubelet.wait_terminated(namespace, "pausable-1")
    saved = progress(batches, "pausable")
    assert 10 <= saved < 150
    assert batches.get("pausable")["status"]["phase"] == "Suspended"
    batches.patch_spec("pausable", {"suspend": False})
    obj = batches.wait_ended("pausable")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 0
    assert f"resuming at item {saved + 1}/150" in kubelet.read_log(namespace, "pausable-2")
    assert outputs_in(out) == list(range(150))


def test_new_run_id_starts_a_clean_rerun_from_item_1(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(SCENARIOS[0], "rerun", out))
    batches.wait_ended("rerun")
    batches.patch_spec("rerun", {"runId": "second"})
    wait_for(
        lambda: batches.get("rerun")["status"].get("runId") == "second", what="the rerun to start"
    )
    obj = batches.wait_ended("rerun")
    assert obj["status"]["phase"] == "Succeeded"
    pods = [
        p
        for p in batches.pods("rerun")
        if p["metadata"]["labels"].get("resumable.dev/run-id") == "second"
    ]
    first, second = (p["metadata"]["name"] for p in pods)
    assert "starting at item 1/50" in kubelet.read_log(namespace, first)
    assert "resuming at item 21/50" in kubelet.read_log(namespace, second)


def test_operator_restarted_mid_run_resumes_without_a_second_pod(
    kubeconfig: Path, namespace: str, batches: Batches, kubelet: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = OperatorProcess(kubeconfig, namespace, tmp_path / "op1.log").start()
    batches.create(batch_manifest(LONG, "restarted", out, delay=0.05))
    wait_for(lambda: progress(batches, "restarted") >= 5, what="progress")
    first.stop(sig=9)  # crash
    kubelet.kill(namespace, "restarted-1")  # the worker dies while no operator runs
    kubelet.wait_terminated(namespace, "restarted-1")
    second = OperatorProcess(kubeconfig, namespace, tmp_path / "op2.log").start()
    second_twin = OperatorProcess(
        kubeconfig, namespace, tmp_path / "op3.log"
    ).start()  # a duplicate replica
    try:
        obj = batches.wait_ended("restarted")
    finally:
        second.stop()
        second_twin.stop()
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 1
    assert [p["metadata"]["name"] for p in batches.pods("restarted")] == [
        "restarted-1",
        "restarted-2",
    ]
    assert outputs_in(out) == list(range(150))


def test_with_leader_election_only_the_leader_acts_and_a_standby_takes_over_when_it_dies(
    kubeconfig: Path, namespace: str, batches: Batches, kubelet: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first, second = leader_and_standby(kubeconfig, namespace, tmp_path)
    try:
        batches.create(batch_manifest(LONG, "failover", out, delay=0.05))
        wait_for(lambda: progress(batches, "failover") >= 5, what="progress")
        assert "resumable_operator_leader 1.0" in first.metrics()
        # The standby watched the same checkpoints but acted on none and counted none.
        assert "resumable_operator_leader 0.0" in second.metrics()
        assert "resumable_items_completed_total 0.0" in second.metrics()
        first.stop(sig=signal.SIGKILL)  # the leader's pod is lost: no release
        kubelet.kill(namespace, "failover-1")  # and its worker with it
        obj = batches.wait_ended("failover")
        assert "leading: op-2_" in second.log()
        assert "resumable_operator_leader 1.0" in second.metrics()
    finally:
        first.stop()
        second.stop()
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 1  # the new leader counted the lost worker once
    assert [p["metadata"]["name"] for p in batches.pods("failover")] == [
        "failover-1",
        "failover-2",
    ]
    assert outputs_in(out) == list(range(150))


def test_stale_worker_is_fenced_when_a_newer_attempt_owns_the_batch(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(LONG, "fenced", out, delay=0.05))
    wait_for(lambda: progress(batches, "fenced") >= 5, what="progress")
    attempt = batches.get("fenced")["status"]["checkpoint"]["attempt"]
    batches.patch_status(
        "fenced",
        [
            {"op": "test", "path": "/status/checkpoint/attempt", "value": attempt},
            {"op": "replace", "path": "/status/checkpoint/attempt", "value": attempt + 5},
        ],
    )
    kubelet.wait_terminated(namespace, "fenced-1")
    log = kubelet.read_log(namespace, "fenced-1")
    assert "FencedError" in log
    assert f"was replaced by attempt {attempt + 5}" in log
    obj = batches.wait_ended("fenced")
    assert obj["status"]["phase"] == "Succeeded"
    assert outputs_in(out) == list(range(150))


def test_pods_and_worker_rbac_carry_owner_references_for_garbage_collection(
    operator: OperatorProcess, batches: Batches, api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    created = batches.create(batch_manifest(SCENARIOS[0], "owned", tmp_path / "out"))
    batches.wait_ended("owned")
    uid = created["metadata"]["uid"]
    objs = [p for p in batches.pods("owned")]
    objs.append(api.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/owned-worker"))
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    objs.append(api.request("GET", f"{rbac}/roles/owned-worker"))
    objs.append(api.request("GET", f"{rbac}/rolebindings/owned-worker"))
    for obj in objs:
        refs = obj["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "resumable.dev/v1alpha1",
                "kind": "ResumableBatch",
                "name": "owned",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], obj["metadata"]["name"]


def test_worker_service_account_may_patch_only_its_own_batch(
    operator: OperatorProcess,
    batches: Batches,
    kubectl: Any,
    controlplane: Any,
    k8s_client: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    batches.create(batch_manifest(SCENARIOS[0], "mine", tmp_path / "a"))
    batches.create(batch_manifest(SCENARIOS[0], "theirs", tmp_path / "b"))
    batches.wait_ended("mine")
    batches.wait_ended("theirs")
    who = f"system:serviceaccount:{namespace}:mine-worker"

    def can_i(name: str) -> str:
        result = kubectl(
            "auth",
            "can-i",
            "patch",
            f"resumablebatches.resumable.dev/{name}",
            "--subresource=status",
            "-n",
            namespace,
            f"--as={who}",
        )
        return str(result.stdout).strip()

    assert can_i("mine") == "yes"
    assert can_i("theirs") == "no"

    from kubernetes import client

    token = (
        client.CoreV1Api(k8s_client)
        .create_namespaced_service_account_token(
            "mine-worker", namespace, {"spec": {"expirationSeconds": 600}}
        )
        .status.token
    )
    as_worker = KubeApi.from_environment(
        kubeconfig=str(
            controlplane.token_kubeconfig(
                tmp_path / "worker.kubeconfig", token, namespace=namespace
            )
        )
    )
    ops = [{"op": "add", "path": "/status/progress", "value": "hacked"}]
    as_worker.request(
        "PATCH",
        batch_path(namespace, "mine", status=True),
        body=ops,
        content_type="application/json-patch+json",
    )
    with pytest.raises(ApiError) as refused:
        as_worker.request(
            "PATCH",
            batch_path(namespace, "theirs", status=True),
            body=ops,
            content_type="application/json-patch+json",
        )
    assert refused.value.status == 403


@pytest.mark.parametrize("workers", PARALLELISM, ids=lambda n: f"{n}-workers")
def test_finished_batch_is_deleted_after_its_ttl(
    workers: int, operator: OperatorProcess, batches: Batches, tmp_path: Path
) -> None:
    scenario = Scenario(id="short", items=8, fault={}, retry={}, phase="Succeeded", restarts=0)
    out = tmp_path / "out"
    batches.create(
        batch_manifest(scenario, "shortlived", out, parallelism=workers, ttlSecondsAfterFinished=2)
    )
    batches.wait_ended("shortlived")
    assert outputs_in(out) == list(range(8))
    wait_for(lambda: not batches.exists("shortlived"), what="the batch to be deleted", timeout=30)


def test_kubectl_plugin_name_runs_the_cli(tmp_path: Path) -> None:
    import shutil
    import sys

    exe = Path(sys.executable).parent / "kubectl-resumable"
    assert exe.exists() or shutil.which("kubectl-resumable")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: kubectl resumable")


def test_oom_killed_worker_is_restarted_and_counted_with_its_reason(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    batches.create(batch_manifest(LONG, "oom", out, delay=0.05))
    wait_for(lambda: progress(batches, "oom") >= 5, what="progress")
    kubelet.kill(namespace, "oom-1", oom=True)
    obj = batches.wait_ended("oom")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 1
    resumed = [e["message"] for e in batches.events("oom") if e["reason"] == "Resumed"]
    assert len(resumed) == 1
    assert "after OOMKilled (exit 137) (attempt 2)" in resumed[0]
    assert outputs_in(out) == list(range(150))
    assert 'resumable_restarts_total{reason="OOMKilled"} 1.0' in operator.metrics()


def test_deleting_the_worker_pod_is_a_disruption_not_a_counted_failure(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    # `kubectl delete pod`: whether the operator sees the worker end (exit 143 while
    # deleting) or only finds it gone, maxRestarts 0 must not fail the batch.
    out = tmp_path / "out"
    batches.create(batch_manifest(LONG, "deleted", out, retry={"maxRestarts": 0}, delay=0.05))
    wait_for(lambda: progress(batches, "deleted") >= 5, what="progress")
    batches.api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/deleted-1")
    obj = batches.wait_ended("deleted")
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("lastFailure")
    assert (obj["status"]["restarts"], obj["status"]["disruptions"]) == (0, 1)
    assert outputs_in(out) == list(range(150))


def test_raising_max_restarts_continues_a_failed_batch_from_its_checkpoint(
    operator: OperatorProcess, batches: Batches, kubelet: Any, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    scenario = next(s for s in SCENARIOS if s.id == "max-restarts-exhausted")
    body = batch_manifest(scenario, "stuck", out)
    batches.create(body)
    obj = batches.wait_ended("stuck")
    assert obj["status"]["phase"] == "Failed"
    assert obj["status"]["checkpoint"]["completed"] == "0-3"
    # Fixed (no poison item any more) and given more restarts: it goes on at item 5.
    template = body["spec"]["template"]
    worker = template["spec"]["containers"][0]
    worker["env"] = [e for e in worker["env"] if e["name"] != "SUMMARIZER_POISON"]
    batches.patch_spec("stuck", {"retry": {"maxRestarts": 4}, "template": template})

    def reopened() -> bool:
        failed = batches.condition("stuck", "Failed") or {}
        return failed.get("status") == "False"

    wait_for(reopened, what="the batch to reopen")
    obj = batches.wait_ended("stuck")
    assert obj["status"]["phase"] == "Succeeded"
    # 2 before the raise, plus stuck-4 started by it; the rest of the budget was not needed.
    assert obj["status"]["restarts"] == 3
    assert outputs_in(out) == list(range(30))
    assert "resuming at item 5/30" in kubelet.read_log(namespace, "stuck-4")
