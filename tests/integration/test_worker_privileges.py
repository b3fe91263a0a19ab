"""What a batch's own worker can do to the operator, on the real control plane.

The worker runs user code that may read untrusted input (an agent summarizing
documents), with a token the operator gave it. The threat model
(docs/security.md): the worker may lie about its progress, never about who runs
next. So its token must not edit the batch (the spec steers the next pod), and
whatever it writes to status, the next pod is the spec's template plus the
injected RESUMABLE_* environment.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from resumable import v1alpha1
from resumable.kubeapi import JSON_PATCH, MERGE_PATCH, ApiError, KubeApi, batch_path
from resumable_core import objects
from resumable_operator.controller import Controller
from tests.integration.harness import Batches
from tests.integration.test_controller import force_delete_pod, idle_manifest, pod_names

ESCALATE = [{"op": "add", "path": "/spec/template/spec/serviceAccountName", "value": "powerful"}]
#: The rules an operator before 0.3 gave every worker: patch on the batch itself.
OLD_RULES = [
    {
        "apiGroups": [v1alpha1.GROUP],
        "resources": [v1alpha1.PLURAL, f"{v1alpha1.PLURAL}/status"],
        "resourceNames": ["NAME"],
        "verbs": ["get", "patch"],
    }
]


def worker_api(api: KubeApi, controlplane: Any, tmp_path: Path, namespace: str, sa: str) -> KubeApi:
    """A client holding a token of the worker's ServiceAccount, as its pod gets one."""
    review = api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 600}},
    )  # fmt: skip
    path = controlplane.token_kubeconfig(
        tmp_path / f"{sa}.kubeconfig", review["status"]["token"], namespace=namespace
    )
    return KubeApi.from_environment(kubeconfig=str(path))


def role_path(namespace: str, name: str) -> str:
    return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}-worker"


def test_worker_token_may_write_its_status_but_not_edit_its_batch(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi, controlplane: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    batches.create(idle_manifest("guarded"))
    ctl.reconcile(namespace, "guarded")  # creates the worker's account, Role and pod
    worker = worker_api(api, controlplane, tmp_path, namespace, "guarded-worker")

    # What the SDK does: read through the status subresource, patch status.
    read = worker.request("GET", batch_path(namespace, "guarded", status=True))
    assert read["status"]["checkpoint"]["attempt"] == 1
    worker.request(
        "PATCH",
        batch_path(namespace, "guarded", status=True),
        body=[{"op": "add", "path": "/status/progress", "value": "3/10"}],
        content_type=JSON_PATCH,
    )
    # The escalation a worker could do before: choose the next pod's account.
    for body, kind in ((ESCALATE, JSON_PATCH), ({"spec": {"suspend": True}}, MERGE_PATCH)):
        with pytest.raises(ApiError) as refused:
            worker.request("PATCH", batch_path(namespace, "guarded"), body=body, content_type=kind)
        assert refused.value.status == 403
    with pytest.raises(ApiError) as refused:
        worker.request("DELETE", batch_path(namespace, "guarded"))
    assert refused.value.status == 403
    spec = batches.get("guarded")["spec"]
    assert "serviceAccountName" not in spec["template"]["spec"]
    assert "suspend" not in spec or spec["suspend"] is False


def test_a_wider_worker_role_from_an_earlier_version_is_narrowed_before_the_next_pod(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    created = batches.create(idle_manifest("upgraded"))
    ctl.reconcile(namespace, "upgraded")
    rules = copy.deepcopy(OLD_RULES)
    rules[0]["resourceNames"] = ["upgraded"]
    api.request(
        "PATCH", role_path(namespace, "upgraded"), body={"rules": rules}, content_type=MERGE_PATCH
    )
    force_delete_pod(api, namespace, "upgraded-1")  # the worker died under the old operator
    ctl.reconcile(namespace, "upgraded")
    role = api.request("GET", role_path(namespace, "upgraded"))
    assert role["rules"] == objects.worker_role_rules(
        v1alpha1.ResumableBatch.model_validate(created)
    )
    assert pod_names(batches, "upgraded") == ["upgraded-2"]


#: Status a hostile worker writes (each valid for the CRD), trying to steer the next pod.
HOSTILE: list[tuple[str, list[dict[str, Any]]]] = [
    ("context asks for another account and image", [
        {"op": "add", "path": "/status/checkpoint/context",
         "value": {"serviceAccountName": "powerful", "image": "evil:latest",
                   "template": {"spec": {"serviceAccountName": "powerful"}}}},
    ]),
    ("a far position, a made-up item count and careful mode", [
        {"op": "add", "path": "/status/checkpoint/nextIndex", "value": 7},
        {"op": "add", "path": "/status/checkpoint/totalItems", "value": 999},
        {"op": "add", "path": "/status/stall", "value": {"index": 7, "attempts": 1}},
    ]),
    ("another pod named active, an attempt far ahead", [
        {"op": "add", "path": "/status/activePod", "value": "someone-elses-pod"},
        {"op": "add", "path": "/status/checkpoint/attempt", "value": 40},
    ]),
    ("a failure digest and a last failure of its own", [
        {"op": "add", "path": "/status/failedSpec", "value": "0123456789abcdef"},
        {"op": "add", "path": "/status/lastFailure", "value": "serviceAccountName: powerful"},
    ]),
]  # fmt: skip


def without_injected(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's spec with the RESUMABLE_* variables (the one allowed difference) taken out."""
    spec = copy.deepcopy(pod["spec"])
    for c in spec["containers"]:
        c["env"] = [e for e in c.get("env", []) if not e["name"].startswith("RESUMABLE_")]
        if not c["env"]:
            del c["env"]
    return spec


def test_hostile_status_cannot_make_the_operator_create_a_pod_other_than_the_template(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi, controlplane: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    manifest = idle_manifest("target", retry={"maxRestarts": 20, "backoff": {"initialSeconds": 0}})
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "x"}]
    batches.create(manifest)
    template = manifest["spec"]["template"]["spec"]
    ctl.reconcile(namespace, "target")
    worker = worker_api(api, controlplane, tmp_path, namespace, "target-worker")
    seen = set(pod_names(batches, "target"))
    for what, ops in HOSTILE:
        worker.request(
            "PATCH", batch_path(namespace, "target", status=True), body=ops,
            content_type=JSON_PATCH,
        )  # fmt: skip
        for name in pod_names(batches, "target"):
            force_delete_pod(api, namespace, name)  # the worker dies after its write
        for _ in range(3):
            ctl.reconcile(namespace, "target")
        new = [n for n in pod_names(batches, "target") if n not in seen]
        assert len(new) == 1, (what, new)
        seen.update(new)
        pod = api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{new[0]}")
        spec = without_injected(pod)
        assert spec["serviceAccountName"] == "target-worker", what
        assert spec["restartPolicy"] == "Never", what
        assert [
            {k: c[k] for k in ("name", "image", "command", "env") if k in c}
            for c in spec["containers"]
        ] == template["containers"], what
        assert "volumes" not in spec or all(
            "projected" in v
            for v in spec["volumes"]  # only the API server's token volume
        ), what
        labels = pod["metadata"]["labels"]
        assert set(labels) == {"resumable.dev/batch", "resumable.dev/attempt",
                               "app.kubernetes.io/managed-by"}, what  # fmt: skip
        assert [o["kind"] for o in pod["metadata"]["ownerReferences"]] == ["ResumableBatch"]
