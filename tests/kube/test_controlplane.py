"""The test control plane (controlplane.py) behaves like a real one: CRD schema, subresources, RBAC.

These tests pin down the API-server behaviour the operator and the SDK rely on,
against the real kube-apiserver + etcd the harness starts; test_kubelet.py does
the same for the process kubelet's pods.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kube.controlplane import REPO_ROOT, ControlPlane

GROUP, VERSION, PLURAL = "resumable.dev", "v1alpha1", "resumablebatches"
CRD_NAME = f"{PLURAL}.{GROUP}"
EXAMPLE = REPO_ROOT / "examples" / "summarizer-batch.yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# What kube-apiserver answers when a JSON patch's `test` op fails (observed on v1.36).
FAILED_TEST_OP_STATUS = 422

Json = dict[str, Any]


def _json(resp: Any) -> Any:
    return json.loads(resp.data)


def batch_manifest(name: str, **spec: Any) -> Json:
    """A minimal valid ResumableBatch (its worker just exits 0)."""
    body: Json = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": 10,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "worker",
                            "image": "python:3.11",
                            "command": ["python", "-c", "pass"],
                        }
                    ],
                }
            },
        },
    }
    body["spec"].update(spec)
    return body


def crd_version(crd_paths: list[Path]) -> Json:
    """The served v1alpha1 version block of our CRD, as written in crds/."""
    for path in crd_paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["metadata"]["name"] == CRD_NAME:
                version: Json = next(v for v in doc["spec"]["versions"] if v["name"] == VERSION)
                return version
    raise AssertionError(f"{CRD_NAME} not found in {crd_paths}")


@pytest.fixture
def create_batch(custom: Any, namespace: str) -> Callable[..., Json]:
    def create(name: str, **spec: Any) -> Json:
        resp = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, batch_manifest(name, **spec), _preload_content=False
        )
        created: Json = _json(resp)
        return created

    return create


def read_batch(custom: Any, namespace: str, name: str) -> Json:
    obj: Json = _json(
        custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
        )
    )
    return obj


# ---- the control plane itself ---------------------------------------------------------------


def test_ready_within_15_seconds(controlplane: ControlPlane) -> None:
    # Binaries come from the cache (built before the session): only start-up counts.
    assert controlplane.timings["ready"] < 15, controlplane.timings


def test_rbac_authorizer_and_crd_are_live(kubectl: Callable[..., Any]) -> None:
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    res = kubectl(
        "get",
        "crd",
        CRD_NAME,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Established')].status}",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "True"


# ---- smoke: the CRD through kubectl ---------------------------------------------------------


def _example_docs(namespace: str) -> str:
    """examples/summarizer-batch.yaml if it exists (namespace stripped), else a minimal batch."""
    if EXAMPLE.exists():
        docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
        for doc in docs:
            doc.get("metadata", {}).pop("namespace", None)
        return yaml.safe_dump_all(docs)
    return yaml.safe_dump(batch_manifest("smoke"))


def test_kubectl_apply_and_get_shows_printer_columns(
    kubectl: Callable[..., Any],
    namespace: str,
    crd_paths: list[Path],
    custom: Any,
) -> None:
    res = kubectl("apply", "-n", namespace, "-f", "-", input=_example_docs(namespace))
    assert res.returncode == 0, res.stderr
    names = kubectl("get", "rb", "-n", namespace, "-o", "name").stdout.split()
    assert names, "kubectl apply created no ResumableBatch"
    name = names[0].split("/", 1)[1]

    # Fill the status so the columns have values to show.
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name,
        {"status": {"progress": "3/10", "restarts": 1, "phase": "Running"}},
        _content_type=MERGE_PATCH, _preload_content=False,
    )  # fmt: skip

    columns = crd_version(crd_paths)["additionalPrinterColumns"]
    default_cols = [c["name"].upper() for c in columns if c.get("priority", 0) == 0]
    res = kubectl("get", "rb", name, "-n", namespace)
    assert res.returncode == 0, res.stderr
    header, row = res.stdout.splitlines()[:2]
    assert header.split() == ["NAME", *default_cols]
    assert row.split()[:4] == [name, "3/10", "1", "Running"]

    wide = kubectl("get", "resumablebatches.resumable.dev", name, "-n", namespace, "-o", "wide")
    assert wide.stdout.splitlines()[0].split() == ["NAME", *[c["name"].upper() for c in columns]]


def test_negative_max_restarts_is_rejected_with_the_schema_message(
    kubectl: Callable[..., Any], namespace: str
) -> None:
    bad = batch_manifest("bad", retry={"maxRestarts": -1})
    res = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad))
    assert res.returncode != 0
    assert "spec.retry.maxRestarts" in res.stderr
    assert "should be greater than or equal to 0" in res.stderr
    assert kubectl("get", "rb", "bad", "-n", namespace).returncode != 0  # nothing was stored


@pytest.mark.parametrize(
    ("name", "spec", "says"),
    [
        ("n" * 64, {}, "metadata.name: Too long: may not be more than 63 bytes"),
        (
            "bad-run-id",
            {"runId": "v2 (retry)"},
            'spec.runId: Invalid value: "v2 (retry)": spec.runId must be a label value: letters, '
            "digits, '-', '_' and '.', starting and ending with a letter or digit",
        ),
    ],
    ids=["name-over-63", "run-id-not-a-label-value"],
)
def test_what_could_not_label_a_pod_is_refused_at_admission(
    kubectl: Callable[..., Any], namespace: str, name: str, spec: dict[str, Any], says: str
) -> None:
    # Either would make every pod create (and the label-selected pod list) fail later.
    bad = batch_manifest(name, **spec)
    res = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad))
    assert res.returncode != 0
    assert says in res.stderr, res.stderr
    assert kubectl("get", "rb", name, "-n", namespace).returncode != 0  # nothing was stored


def test_cel_rule_is_enforced_with_its_message(
    custom: Any, namespace: str, crd_paths: list[Path]
) -> None:
    backoff = crd_version(crd_paths)["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["retry"]["properties"]["backoff"]
    message = backoff["x-kubernetes-validations"][0]["message"]
    bad = batch_manifest("bad-backoff", retry={"backoff": {"initialSeconds": 10, "maxSeconds": 1}})
    with pytest.raises(client.ApiException) as exc:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, bad, _preload_content=False
        )
    assert exc.value.status == 422
    assert message in json.loads(exc.value.body or "{}")["message"]


# ---- subresources and patches -----------------------------------------------------------------


def test_status_write_keeps_spec_and_spec_write_keeps_status(
    custom: Any, namespace: str, create_batch: Callable[..., Json]
) -> None:
    created = create_batch("sub")
    generation = created["metadata"]["generation"]

    # Through /status: the status changes, the spec in the same body is ignored.
    status = {"restarts": 2, "checkpoint": {"nextIndex": 5, "completed": "0-4", "attempt": 1}}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "sub",
        {"spec": {"totalItems": 999}, "status": status},
        _content_type=MERGE_PATCH, _preload_content=False,
    )  # fmt: skip
    obj = read_batch(custom, namespace, "sub")
    assert obj["spec"]["totalItems"] == 10
    assert obj["status"]["restarts"] == 2
    assert obj["status"]["checkpoint"]["completed"] == "0-4"
    assert obj["metadata"]["generation"] == generation  # status writes don't bump it

    # Through the main resource: the spec changes, the status in the same body is ignored.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "sub",
        {"spec": {"totalItems": 20}, "status": {"restarts": 7}},
        _content_type=MERGE_PATCH, _preload_content=False,
    )  # fmt: skip
    obj = read_batch(custom, namespace, "sub")
    assert obj["spec"]["totalItems"] == 20
    assert obj["status"]["restarts"] == 2
    assert obj["status"]["checkpoint"]["nextIndex"] == 5
    assert obj["metadata"]["generation"] == generation + 1


def test_failed_json_patch_test_op_is_refused_and_changes_nothing(
    custom: Any, namespace: str, create_batch: Callable[..., Json]
) -> None:
    before = create_batch("jp")
    patch = [
        {"op": "test", "path": "/spec/totalItems", "value": 999},
        {"op": "replace", "path": "/spec/totalItems", "value": 7},
    ]
    with pytest.raises(client.ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "jp", patch,
            _content_type=JSON_PATCH, _preload_content=False,
        )  # fmt: skip
    # What kube-apiserver really answers to a failed `test` op.
    assert exc.value.status == FAILED_TEST_OP_STATUS, exc.value.body
    assert json.loads(exc.value.body or "{}")["reason"] == "Invalid"
    after = read_batch(custom, namespace, "jp")
    assert after["spec"]["totalItems"] == 10
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # The same patch on /status (the SDK's fenced checkpoint write) is refused alike.
    status_patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/status", "value": {"restarts": 3}},
    ]
    with pytest.raises(client.ApiException) as exc:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "jp", status_patch,
            _content_type=JSON_PATCH, _preload_content=False,
        )  # fmt: skip
    assert exc.value.status == FAILED_TEST_OP_STATUS
    assert read_batch(custom, namespace, "jp").get("status", {}).get("restarts") != 3


def test_stale_resource_version_is_a_conflict(
    custom: Any, namespace: str, create_batch: Callable[..., Json]
) -> None:
    stale = create_batch("rv")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "rv", {"spec": {"totalItems": 11}},
        _content_type=MERGE_PATCH, _preload_content=False,
    )  # fmt: skip
    stale["spec"]["totalItems"] = 12
    with pytest.raises(client.ApiException) as exc:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "rv", stale, _preload_content=False
        )
    assert exc.value.status == 409


# ---- RBAC -------------------------------------------------------------------------------------


@pytest.fixture
def sa_kubeconfig(
    controlplane: ControlPlane, core: Any, namespace: str, tmp_path: Path
) -> Callable[[str], Path]:
    """Create a ServiceAccount; return a kubeconfig with a TokenRequest token for it."""

    def make(name: str) -> Path:
        controlplane.ensure_service_account(namespace, name)
        resp = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 600}}, _preload_content=False
        )
        token = _json(resp)["status"]["token"]
        return controlplane.token_kubeconfig(
            tmp_path / f"{name}.kubeconfig", token, namespace=namespace
        )

    return make


def test_service_account_without_role_is_refused_a_status_patch(
    controlplane: ControlPlane,
    namespace: str,
    create_batch: Callable[..., Json],
    sa_kubeconfig: Callable[[str], Path],
    k8s_client: Any,
) -> None:
    create_batch("guarded")
    kubeconfig = sa_kubeconfig("nobody")
    api = controlplane.new_api_client(kubeconfig)
    try:
        as_sa: Any = client.CustomObjectsApi(api)
        patch = {"status": {"restarts": 1}}
        with pytest.raises(client.ApiException) as exc:
            as_sa.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, "guarded", patch,
                _content_type=MERGE_PATCH, _preload_content=False,
            )  # fmt: skip
        assert exc.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in (exc.value.body or "")

        # Granting exactly that permission makes the same request pass: RBAC is live.
        rbac: Any = client.RbacAuthorizationV1Api(k8s_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "status-writer"},
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "resources": [f"{PLURAL}/status"],
                        "verbs": ["get", "patch"],
                    }
                ],
            },
            _preload_content=False,
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "status-writer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "status-writer",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
            _preload_content=False,
        )
        deadline = time.monotonic() + 10  # the RBAC authorizer's cache catches up quickly
        while True:
            try:
                as_sa.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, "guarded", patch,
                    _content_type=MERGE_PATCH, _preload_content=False,
                )  # fmt: skip
                break
            except client.ApiException as e:
                if e.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # ...but the spec stays out of reach.
        with pytest.raises(client.ApiException) as exc:
            as_sa.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "guarded", {"spec": {"totalItems": 1}},
                _content_type=MERGE_PATCH, _preload_content=False,
            )  # fmt: skip
        assert exc.value.status == 403
    finally:
        api.close()
