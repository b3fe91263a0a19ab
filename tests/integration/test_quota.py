"""A namespace's ResourceQuota refusing the worker pod (403 "exceeded quota"): wait, never fail.

The real API server's ResourceQuota admission refuses the pod; the operator keeps
the attempt, retries it with growing delays and runs it once the quota allows,
with neither a failure nor a restart counted. (Kueue's quota, which decides
before any pod is asked for, is tests/integration/test_kueue.py's.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resumable.kubeapi import KubeApi
from scenarios import Scenario, manifest
from tests.integration.harness import Batches, OperatorProcess, outputs_in
from tests.waiting import wait_for

SHORT = Scenario(
    id="short",
    items=20,
    fault={},
    retry={"maxRestarts": 0, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
    phase="Succeeded",
    restarts=0,
)


def no_pods_quota(api: KubeApi, namespace: str) -> str:
    """A ResourceQuota of zero pods. No quota controller runs here, so its status (what
    the admission plugin checks against) is written as that controller would."""
    path = f"/api/v1/namespaces/{namespace}/resourcequotas"
    api.request(
        "POST", path, body={"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )
    api.request(
        "PUT",
        f"{path}/no-pods/status",
        body={
            **api.request("GET", f"{path}/no-pods"),
            "status": {"hard": {"pods": "0"}, "used": {"pods": "0"}},
        },
    )
    return f"{path}/no-pods"


def test_a_pod_refused_by_a_resource_quota_waits_and_runs_once_it_allows(
    operator: OperatorProcess,
    api: KubeApi,
    batches: Batches,
    kubelet: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    quota = no_pods_quota(api, namespace)
    out = tmp_path / "out"
    batches.create(manifest(SHORT, "quota", env={"RESUMABLE_OUTPUT_DIR": str(out)}))

    def refused() -> dict[str, Any] | None:
        found = batches.condition("quota", "Progressing")
        return found if found and found["reason"] == "PodCreateRetrying" else None

    progressing = wait_for(refused, what="the pod refused by the quota")
    assert "exceeded quota" in progressing["message"]
    status = batches.get("quota")["status"]
    assert status["phase"] == "Pending"
    assert status["restarts"] == 0
    failed = batches.condition("quota", "Failed")
    assert failed is not None
    assert failed["status"] == "False"
    api.request("DELETE", quota)  # the quota allows it now
    obj = batches.wait_ended("quota", timeout=60)
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["restarts"] == 0
    assert [p["metadata"]["name"] for p in batches.pods("quota")] == ["quota-1"]  # same attempt
    assert outputs_in(out) == list(range(20))
