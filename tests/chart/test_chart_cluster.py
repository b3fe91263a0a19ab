"""The rendered chart against the real test API server (kube-apiserver of the pinned version).

- every object of every tested value set passes a server-side dry run: the API
  server validates it against its own schemas, unknown fields rejected;
- `helm install`, `helm upgrade` and `helm uninstall` work for real, including the
  leader election's Role staying whatever the replicas and the kept ResumableBatch CRD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chartlib import CHART, VALUE_SETS, Helm, lease_rules, substitute
from tests.waiting import wait_for

CRD = "resumablebatches.resumable.dev"


def release_name(namespace: str) -> str:
    """A release name unique to the test (cluster-scoped objects are named after it)."""
    return "rb" + namespace.rsplit("-", 1)[-1]


@pytest.mark.parametrize("name", [n for n in VALUE_SETS])
def test_every_rendered_object_is_accepted_by_the_api_server(
    name: str,
    helm: Helm,
    kubectl: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    values = substitute(VALUE_SETS[name], namespace=namespace)
    rendered = helm.template_text(values, release=release_name(namespace), namespace=namespace)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered)
    objects = [line for line in rendered.splitlines() if line.startswith("kind: ")]
    proc = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--force-conflicts",
        "--field-manager=chart-test",
        "-f",
        str(manifest),
    )
    assert proc.returncode == 0, f"rejected:\n{proc.stderr}"
    applied = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), proc.stdout


def test_an_unknown_field_would_be_rejected(kubectl: Any, namespace: str, tmp_path: Path) -> None:
    """The dry run above is strict: a misspelt field in a template would fail it."""
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "x", "namespace": namespace},
                "automountToken": True,
            }
        )
    )
    proc = kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", str(manifest)
    )
    assert proc.returncode != 0
    assert "automountToken" in proc.stderr


def _get(kubectl: Any, *args: str) -> dict[str, Any] | None:
    proc = kubectl("get", *args, "-o", "json")
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture
def adoptable_crd(controlplane: Any, crd_paths: list[Path]) -> Iterator[None]:
    """The session's CRD was created with kubectl; put it back as it was after the test."""
    try:
        yield
    finally:
        controlplane.install_crds(crd_paths)  # a PUT: helm's labels and annotations are dropped


def test_helm_install_upgrade_and_uninstall(
    helm: Helm, kubeconfig: Path, kubectl: Any, namespace: str, adoptable_crd: None
) -> None:
    release = release_name(namespace)
    fullname = f"{release}-resumable-batch"
    base = ["--namespace", namespace, "--kubeconfig", str(kubeconfig)]

    # Two replicas elect a leader through a Lease: the chart adds the Role for it.
    # --take-ownership adopts the CRD that was applied with kubectl before (see the chart README).
    proc = helm.run(
        "install", release, str(CHART), *base, "--set", "replicaCount=2", "--take-ownership"
    )
    assert f"get lease {fullname}" in proc.stdout  # NOTES.txt says where the leader is
    crd = _get(kubectl, "crd", CRD)
    assert crd is not None
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    deployment = _get(kubectl, "deployment", fullname, "-n", namespace)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    lease_role = f"{fullname}-leader-election"
    role = _get(kubectl, "role", lease_role, "-n", namespace)
    assert role is not None
    assert role["rules"] == lease_rules(fullname)
    assert _get(kubectl, "rolebinding", lease_role, "-n", namespace) is not None
    assert _get(kubectl, "service", f"{fullname}-metrics", "-n", namespace) is not None
    # Nothing of kopf's peering any more: neither its CRDs (crds/ is gone) nor an object.
    assert _get(kubectl, "crd", "clusterkopfpeerings.kopf.dev") is None
    assert _get(kubectl, "crd", "kopfpeerings.kopf.dev") is None

    # Back to one replica, metrics off: the Service goes away, the Lease's Role stays (one
    # pod still elects itself, so a later scale-up is safe), and the pod never overlaps.
    proc = helm.run("upgrade", release, str(CHART), *base, "--set", "metrics.enabled=false")
    assert f"get lease {fullname}" in proc.stdout
    role = _get(kubectl, "role", lease_role, "-n", namespace)
    assert role is not None
    assert role["rules"] == lease_rules(fullname)
    assert _get(kubectl, "rolebinding", lease_role, "-n", namespace) is not None
    assert _get(kubectl, "service", f"{fullname}-metrics", "-n", namespace) is None
    deployment = _get(kubectl, "deployment", fullname, "-n", namespace)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RESUMABLE_OPERATOR_LEADER_ELECTION"]["value"] == "true"
    assert env["RESUMABLE_OPERATOR_LEASE_NAME"]["value"] == fullname
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    proc = helm.run("uninstall", release, *base)
    assert CRD in proc.stdout + proc.stderr  # helm reports the kept resource
    assert _get(kubectl, "deployment", fullname, "-n", namespace) is None
    assert _get(kubectl, "clusterrole", fullname) is None
    assert _get(kubectl, "crd", CRD) is not None, "crds.keep must leave the CRD in place"


def batch_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}},
    }


def other_worker_api(admin: Any, controlplane: Any, namespace: str, tmp_path: Path) -> Any:
    """A client with the token a kubelet gives batch "other"'s worker pod other-1."""
    from resumable.kubeapi import KubeApi

    controlplane.ensure_service_account(namespace, "other-worker")
    pod = admin.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods",
        body={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other-1"},
              "spec": {"serviceAccountName": "other-worker",
                       "containers": [{"name": "w", "image": "x"}]}},
    )  # fmt: skip
    token = admin.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/other-worker/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 600,
                       "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "other-1",
                                          "uid": pod["metadata"]["uid"]}}},
    )["status"]["token"]  # fmt: skip
    path = controlplane.token_kubeconfig(tmp_path / "other.kubeconfig", token, namespace=namespace)
    return KubeApi.from_environment(kubeconfig=str(path))


def test_worker_guard_refuses_a_batchs_own_worker_changing_it_even_where_rbac_allows(
    helm: Helm, kubectl: Any, kubeconfig: Path, controlplane: Any, namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Defence in depth (docs/security.md): RBAC misconfigured to let every account edit
    batches, the admission policy still keeps a batch's worker off its spec, and any
    batch's worker pod off every batch."""
    from resumable.kubeapi import JSON_PATCH, MERGE_PATCH, ApiError, KubeApi, batch_path

    release = release_name(namespace)
    rendered = helm.template_text(
        {"watchNamespaces": [namespace]},
        release=release,
        namespace=namespace,
        extra=["--show-only", "templates/worker-guard.yaml"],
    )
    manifest = tmp_path / "guard.yaml"
    manifest.write_text(rendered)
    assert kubectl("apply", "-f", str(manifest)).returncode == 0
    admin = KubeApi.from_environment(kubeconfig=str(kubeconfig))
    try:
        admin.request(
            "POST",
            batch_path(namespace),
            body=batch_body("guarded"),
        )  # fmt: skip
        # The misconfiguration: every account in the namespace may edit and delete batches.
        controlplane.ensure_service_account(namespace, "guarded-worker")
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
        admin.request(
            "POST", f"{rbac}/roles",
            body={"metadata": {"name": "too-wide"},
                  "rules": [{"apiGroups": ["resumable.dev"],
                             "resources": ["resumablebatches", "resumablebatches/status"],
                             "verbs": ["get", "create", "patch", "update", "delete"]}]},
        )  # fmt: skip
        admin.request(
            "POST", f"{rbac}/rolebindings",
            body={"metadata": {"name": "too-wide"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                              "name": "too-wide"},
                  "subjects": [{"kind": "Group", "name": f"system:serviceaccounts:{namespace}"}]},
        )  # fmt: skip
        token = admin.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/guarded-worker/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 600}},
        )["status"]["token"]  # fmt: skip
        worker = KubeApi.from_environment(
            kubeconfig=str(
                controlplane.token_kubeconfig(tmp_path / "w.kubeconfig", token, namespace=namespace)
            )
        )
        escalate = [
            {"op": "add", "path": "/spec/template/spec/serviceAccountName", "value": "powerful"}
        ]

        def refused() -> str | None:
            try:
                worker.request(
                    "PATCH", batch_path(namespace, "guarded"), body=escalate,
                    content_type=JSON_PATCH, query={"dryRun": "All"},
                )  # fmt: skip
            except ApiError as exc:
                return exc.message if exc.status in (403, 422) else None
            return None  # the policy is not loaded yet: the API server picks it up in a moment

        message = wait_for(refused, what="the policy to refuse the worker", timeout=30)
        assert "ServiceAccount guarded-worker runs the workers of ResumableBatch guarded" in message
        with pytest.raises(ApiError):
            worker.request("DELETE", batch_path(namespace, "guarded"))
        # Its status it may still write (the checkpoint), and a person may still edit the spec.
        worker.request(
            "PATCH", batch_path(namespace, "guarded", status=True),
            body={"status": {"progress": "1/2"}}, content_type=MERGE_PATCH,
        )  # fmt: skip
        admin.request(
            "PATCH", batch_path(namespace, "guarded"), body={"spec": {"suspend": True}},
            content_type=MERGE_PATCH,
        )  # fmt: skip
        batch = admin.request("GET", batch_path(namespace, "guarded"))
        assert batch["spec"]["suspend"] is True
        assert "serviceAccountName" not in batch["spec"]["template"]["spec"]
        assert batch["status"]["progress"] == "1/2"

        # Another batch's worker pod (its token bound to pod other-1, running as
        # other-worker): not on this batch, and no batch of its own making either.
        other = other_worker_api(admin, controlplane, namespace, tmp_path)
        with pytest.raises(ApiError) as cross:
            other.request(
                "PATCH", batch_path(namespace, "guarded"), body=escalate,
                content_type=JSON_PATCH, query={"dryRun": "All"},
            )  # fmt: skip
        assert "pod other-1 is a ResumableBatch worker" in cross.value.message
        made = {**batch_body("made-by-a-worker"), "metadata": {"name": "made-by-a-worker"}}
        with pytest.raises(ApiError) as create:
            other.request("POST", batch_path(namespace), body=made, query={"dryRun": "All"})
        assert "pod other-1 is a ResumableBatch worker" in create.value.message
        admin.request("POST", batch_path(namespace), body=made, query={"dryRun": "All"})  # a person
    finally:
        kubectl("delete", "--ignore-not-found", "-f", str(manifest))
