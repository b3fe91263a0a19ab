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
from resumable.kubeapi import (
    JSON_PATCH,
    MERGE_PATCH,
    ApiError,
    ForbiddenError,
    KubeApi,
    batch_path,
)
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


def widen_to_0_2(api: KubeApi, namespace: str, name: str) -> None:
    """Give the batch's worker Role the rules an operator before 0.3 gave it."""
    rules = copy.deepcopy(OLD_RULES)
    rules[0]["resourceNames"] = [name]
    api.request(
        "PATCH", role_path(namespace, name), body={"rules": rules}, content_type=MERGE_PATCH
    )


def may_patch_spec(worker: KubeApi, namespace: str, name: str) -> bool:
    """Whether the worker's token may still choose the next pod's account (a dry run)."""
    try:
        worker.request(
            "PATCH", batch_path(namespace, name), body=ESCALATE, content_type=JSON_PATCH,
            query={"dryRun": "All"},
        )  # fmt: skip
    except ForbiddenError:
        return False
    return True


@pytest.mark.parametrize("own_account", [False, True], ids=["operator-account", "template-account"])
def test_a_0_2_worker_role_is_narrowed_when_an_upgraded_operator_first_sees_the_batch(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi, controlplane: Any,
    tmp_path: Path, own_account: bool,
) -> None:  # fmt: skip
    """A worker running under a 0.2 Role loses the spec right at the upgraded operator's
    first look, before any pod ends, whatever account its template names."""
    old = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    created = batches.create(idle_manifest("upgraded"))
    old.reconcile(namespace, "upgraded")  # the worker's account, Role and pod exist
    widen_to_0_2(api, namespace, "upgraded")
    if own_account:  # the user later names an account of their own in the template
        api.request(
            "PATCH", batch_path(namespace, "upgraded"),
            body={"spec": {"template": {"spec": {"serviceAccountName": "default"}}}},
            content_type=MERGE_PATCH,
        )  # fmt: skip
    worker = worker_api(api, controlplane, tmp_path, namespace, "upgraded-worker")
    assert may_patch_spec(worker, namespace, "upgraded")  # the hole 0.2 left

    upgraded = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    upgraded.reconcile(namespace, "upgraded")  # its first look: the pod still runs
    assert pod_names(batches, "upgraded") == ["upgraded-1"]
    role = api.request("GET", role_path(namespace, "upgraded"))
    assert role["rules"] == objects.worker_role_rules(
        v1alpha1.ResumableBatch.model_validate(created)
    )
    assert not may_patch_spec(worker, namespace, "upgraded")


def test_a_wider_worker_role_is_narrowed_again_before_the_next_pod(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    created = batches.create(idle_manifest("rewidened"))
    ctl.reconcile(namespace, "rewidened")
    widen_to_0_2(api, namespace, "rewidened")  # after this operator's first look
    force_delete_pod(api, namespace, "rewidened-1")
    ctl.reconcile(namespace, "rewidened")
    role = api.request("GET", role_path(namespace, "rewidened"))
    assert role["rules"] == objects.worker_role_rules(
        v1alpha1.ResumableBatch.model_validate(created)
    )
    assert pod_names(batches, "rewidened") == ["rewidened-2"]


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


def comparable(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's spec without what may differ between two attempts: the RESUMABLE_*
    values, and the token volume the API server adds (its name is random)."""
    spec = copy.deepcopy(pod["spec"])
    for c in spec["containers"]:
        c["env"] = [e for e in c.get("env", []) if not e["name"].startswith("RESUMABLE_")]
        c["volumeMounts"] = [
            m for m in c.get("volumeMounts", []) if not m["name"].startswith("kube-api-access-")
        ]
    spec["volumes"] = [v for v in spec.get("volumes", []) if not v["name"].startswith("kube-api")]
    return spec


def foreign_pod(api: KubeApi, namespace: str, name: str, batch: str) -> None:
    """A pod the batch does not own, carrying its label (someone else's, say)."""
    api.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods",
        body={"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": name, "labels": {"resumable.dev/batch": batch}},
              "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )  # fmt: skip


def test_hostile_status_cannot_make_the_operator_create_a_pod_other_than_the_template(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi, controlplane: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    manifest = idle_manifest("target", retry={"maxRestarts": 20, "backoff": {"initialSeconds": 0}})
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "x"}]
    batches.create(manifest)
    foreign_pod(api, namespace, "someone-elses-pod", "target")
    ctl.reconcile(namespace, "target")
    (first_name,) = [n for n in pod_names(batches, "target") if n.startswith("target-")]
    first = api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{first_name}")
    template = manifest["spec"]["template"]["spec"]
    assert [{k: c[k] for k in ("name", "image", "command", "env") if k in c}
            for c in comparable(first)["containers"]] == template["containers"]  # fmt: skip
    assert first["spec"]["serviceAccountName"] == "target-worker"
    worker = worker_api(api, controlplane, tmp_path, namespace, "target-worker")
    seen = {first_name}
    for what, ops in HOSTILE:
        worker.request(
            "PATCH", batch_path(namespace, "target", status=True), body=ops,
            content_type=JSON_PATCH,
        )  # fmt: skip
        for name in pod_names(
            batches, "target", uid=first["metadata"]["ownerReferences"][0]["uid"]
        ):
            force_delete_pod(api, namespace, name)  # the worker dies after its write
        for _ in range(3):
            ctl.reconcile(namespace, "target")
        new = [n for n in pod_names(batches, "target") if n not in seen]
        assert len(new) == 1, (what, new)
        seen.update(new)
        pod = api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{new[0]}")
        assert comparable(pod) == comparable(first), what
        assert pod["metadata"]["labels"].keys() == first["metadata"]["labels"].keys(), what
        assert pod["metadata"]["ownerReferences"] == first["metadata"]["ownerReferences"], what
        # Someone else's pod that carries the batch's label is never touched.
        api.request("GET", f"/api/v1/namespaces/{namespace}/pods/someone-elses-pod")
