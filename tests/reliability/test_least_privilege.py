"""Least privilege: a worker's own token reaches its batch's status and nothing else.

The token is the one a real worker pod holds: the process kubelet asks the API
server for it (TokenRequest, bound to the pod) and hands it to the pod's process
in a kubeconfig, so the requests below go through the API server's real RBAC as
the pod's ``<batch>-worker`` ServiceAccount, with the Role the operator made.
Tried: other batches (read, edit, status, delete, list, create), pods (its own
included), pods/exec and pods/log, secrets, configmaps, service-account tokens,
RBAC (its own Role included), and the same in another namespace. That the token
cannot edit its own batch, and that whatever it writes to status cannot change
the next pod, is proved in tests/integration/test_worker_privileges.py.

And the operator's own rights: every verb the chart grants it (rendered with
helm, both the cluster-wide and the one-namespace layouts) has its row in
docs/security.md, and the page lists no verb the chart does not grant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import ApiError, KubeApi, batch_path
from tests.chart.chartlib import Helm, Permission, find_helm, of_kind, permissions
from tests.integration.harness import Batches, OperatorProcess
from tests.kube.kubelet import ProcessKubelet
from tests.reliability.podworker import worker_batch

ROOT = Path(__file__).resolve().parents[2]
SECURITY = ROOT / "docs" / "security.md"
JSON_PATCH = "application/json-patch+json"
HARMLESS = [{"op": "test", "path": "/metadata/name", "value": "x"}]


def requests(namespace: str, other: str) -> list[tuple[str, str, str, Any]]:
    """(what, method, path, body) of everything the worker of batch ``mine`` must not do."""
    core = f"/api/v1/namespaces/{namespace}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    theirs = batch_path(namespace, "theirs")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evil"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    batch = worker_batch("evil", Path("/nonexistent"), items=1, delay=0)
    role = {"metadata": {"name": "evil"}, "rules": []}
    token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    widen = [
        {
            "op": "add",
            "path": "/rules/-",
            "value": {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        }
    ]
    return [
        ("get another batch", "GET", theirs, None),
        ("patch another batch", "PATCH", theirs, HARMLESS),
        ("get another batch's status", "GET", batch_path(namespace, "theirs", status=True), None),
        (
            "patch another batch's status",
            "PATCH",
            batch_path(namespace, "theirs", status=True),
            HARMLESS,
        ),
        ("delete another batch", "DELETE", theirs, None),
        ("delete its own batch", "DELETE", batch_path(namespace, "mine"), None),
        ("list batches", "GET", batch_path(namespace), None),
        ("create a batch", "POST", batch_path(namespace), batch),
        ("list pods", "GET", f"{core}/pods", None),
        ("get its own pod", "GET", f"{core}/pods/mine-1", None),
        ("get another batch's pod", "GET", f"{core}/pods/theirs-1", None),
        ("create a pod", "POST", f"{core}/pods", pod),
        ("delete another batch's pod", "DELETE", f"{core}/pods/theirs-1", None),
        ("exec into a pod", "POST", f"{core}/pods/theirs-1/exec?command=true", None),
        ("read another pod's log", "GET", f"{core}/pods/theirs-1/log", None),
        ("list secrets", "GET", f"{core}/secrets", None),
        ("get a secret", "GET", f"{core}/secrets/credentials", None),
        ("create a secret", "POST", f"{core}/secrets", {"metadata": {"name": "evil"}}),
        ("list configmaps", "GET", f"{core}/configmaps", None),
        ("token for another worker", "POST", f"{core}/serviceaccounts/theirs-worker/token", token),
        ("list service accounts", "GET", f"{core}/serviceaccounts", None),
        ("widen its own Role", "PATCH", f"{rbac}/roles/mine-worker", widen),
        ("create a Role", "POST", f"{rbac}/roles", role),
        (
            "create a RoleBinding",
            "POST",
            f"{rbac}/rolebindings",
            {
                "metadata": {"name": "evil"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "admin",
                },
                "subjects": [],
            },
        ),
        ("list events", "GET", f"{core}/events", None),
        ("get a batch in another namespace", "GET", batch_path(other, "theirs"), None),
        ("list pods in another namespace", "GET", f"/api/v1/namespaces/{other}/pods", None),
        ("list secrets in another namespace", "GET", f"/api/v1/namespaces/{other}/secrets", None),
        ("list namespaces", "GET", "/api/v1/namespaces", None),
        ("list nodes", "GET", "/api/v1/nodes", None),
    ]


def outcome(worker: KubeApi, method: str, path: str, body: Any) -> int:
    """The HTTP status the API server answered the worker with."""
    kwargs: dict[str, Any] = {"body": body}
    if method == "PATCH":
        kwargs["content_type"] = JSON_PATCH
    try:
        worker.request(method, path, **kwargs)
    except ApiError as exc:
        return exc.status
    return 200


@pytest.fixture
def other_namespace(controlplane: Any, namespace: str) -> Any:
    name = f"{namespace}-other"[:63]
    controlplane.create_namespace(name)
    yield name
    controlplane.delete_namespace(name)


def test_a_workers_own_token_is_refused_other_batches_pods_secrets_and_rbac(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: ProcessKubelet,
    api: KubeApi,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
    figure: Any,
) -> None:
    for name in ("mine", "theirs"):
        (tmp_path / name).mkdir()
        batches.create(worker_batch(name, tmp_path / name, items=100_000, delay=0.05))
    api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={"metadata": {"name": "credentials"}, "stringData": {"key": "s3cr3t"}},
    )
    kubelet.wait_running(namespace, "mine-1")
    kubelet.wait_running(namespace, "theirs-1")
    # The very kubeconfig the pod's process was started with (tests/kube/kubelet.py).
    token_file = kubelet.pod_workdir(namespace, "mine-1") / "kubeconfig"
    worker = KubeApi.from_environment(kubeconfig=str(token_file))
    own_status = batch_path(namespace, "mine", status=True)
    allowed = [
        outcome(worker, "GET", own_status, None),
        outcome(worker, "GET", batch_path(namespace, "mine"), None),
    ]
    tried = requests(namespace, other_namespace)
    answers = {what: outcome(worker, method, path, body) for what, method, path, body in tried}
    refused = [what for what, status in answers.items() if status == 403]
    figure(
        "least-privilege",
        f"a worker pod's own token: its own batch and status readable ({allowed.count(200)} "
        f"of {len(allowed)}); {len(refused)} of {len(tried)} other requests refused (403), "
        f"let through {len(tried) - len(refused)}",
        tried=len(tried),
        refused=len(refused),
        let_through=len(tried) - len(refused),
    )
    assert allowed == [200, 200]
    assert {w: s for w, s in answers.items() if s != 403} == {}


#: A row of the operator's table in docs/security.md: | `group` | `resource` | verbs | why |
ROW = re.compile(r"^\| `([a-z0-9.]*)` \| `([a-z/]+)` \| ([a-z, ]+) \|", flags=re.M)


def documented() -> set[Permission]:
    text = SECURITY.read_text().split("## The operator's own rights", 1)[1].split("\n## ", 1)[0]
    group_of = {"core": ""}
    return {
        (group_of.get(group, group), resource, verb.strip())
        for group, resource, verbs in ROW.findall(text)
        for verb in verbs.split(",")
    }


def test_docs_security_lists_every_verb_the_chart_grants_the_operator(
    tmp_path: Path,
) -> None:
    try:
        helm = Helm(find_helm(), tmp_path / "helm")
    except RuntimeError as exc:
        pytest.skip(f"helm unavailable: {exc}")
    granted: set[Permission] = set()
    for values in ({}, {"watchNamespaces": ["team-a"]}):
        objects = helm.template(values)
        for kind in ("ClusterRole", "Role"):
            for role in of_kind(objects, kind):
                granted |= permissions(
                    {k: v for k, v in rule.items() if k != "resourceNames"}
                    for rule in role.get("rules", [])
                )
    shown = documented()
    assert granted - shown == set(), "granted by the chart, missing from docs/security.md"
    assert shown - granted == set(), "in docs/security.md, granted by no chart layout"
