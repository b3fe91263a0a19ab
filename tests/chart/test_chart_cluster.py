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

pytestmark = pytest.mark.integration

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
