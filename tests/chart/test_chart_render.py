"""The Helm chart, rendered: lint, values schema, labels, security, RBAC, CRD, replicas.

Only helm is needed (no cluster). The rendered objects are checked against the
API server in test_chart_cluster.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import (
    CHART,
    CLUSTER_PERMISSIONS,
    KUEUE_CLUSTER_PERMISSIONS,
    KUEUE_PERMISSIONS,
    NAMESPACED_PERMISSIONS,
    RECOMMENDED_LABELS,
    REPO_ROOT,
    VALUE_SETS,
    Helm,
    container,
    downward_env_of,
    env_of,
    kinds,
    lease_rules,
    of_kind,
    only,
    permissions,
    substitute,
)
from tests.tools import chart_crds

NS = "team-a"


def value_set(name: str) -> dict[str, Any]:
    return dict(substitute(VALUE_SETS[name], namespace=NS))


def all_metadata(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(what, metadata) of every object and of the Deployment's pod template."""
    out = [(f"{o['kind']}/{o['metadata']['name']}", o["metadata"]) for o in objects]
    out += [
        (f"pod template of {d['metadata']['name']}", d["spec"]["template"]["metadata"])
        for d in of_kind(objects, "Deployment")
    ]
    return out


# ---- lint and values schema ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_passes_in_strict_mode(helm: Helm, name: str) -> None:
    args = ["lint", str(CHART), "--strict"]
    values = value_set(name)
    if values:
        args += ["-f", str(helm.values_file(values))]
    proc = helm.run(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("setting", "unknown"),
    [
        ("replicaCont=2", "replicaCont"),
        ("metrics.enabeld=false", "enabeld"),
        ("crds.keeep=true", "keeep"),
        ("peeringName=ops", "peeringName"),  # gone with kopf peering
    ],
)
def test_values_schema_rejects_a_typo(helm: Helm, setting: str, unknown: str) -> None:
    proc = helm.run("template", "rb", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert f"additional properties '{unknown}' not allowed" in proc.stderr


@pytest.mark.parametrize(
    "setting",
    [
        "logLevel=CHATTY",
        "replicaCount=-1",
        "watchNamespaces[0]=Not_A_Name",
        "image.pullPolicy=Sometimes",
    ],
)
def test_values_schema_rejects_a_bad_value(helm: Helm, setting: str) -> None:
    proc = helm.run("template", "rb", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications" in proc.stderr, proc.stderr


def _schema_objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path or "<root>", node))
        for key, child in node.get("properties", {}).items():
            found += _schema_objects(child, f"{path}.{key}" if path else key)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += _schema_objects(node[key], f"{path}[{key}]")
    return found


#: Kubernetes objects passed through as they are; the API server checks them strictly.
PASS_THROUGH = {"affinity.nodeAffinity", "affinity.podAffinity", "affinity.podAntiAffinity"}


def test_values_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = [
        path
        for path, node in _schema_objects(schema)
        if path not in PASS_THROUGH and "additionalProperties" not in node
    ]
    assert open_objects == [], "objects that accept any key: add additionalProperties"
    closed = [
        path for path, node in _schema_objects(schema) if node.get("additionalProperties") is False
    ]
    assert "<root>" in closed
    assert "image" in closed
    assert "metrics" in closed


def _documented_keys(text: str) -> tuple[dict[str, str], list[str]]:
    """Map each values.yaml key (dotted path) to the first line of the comment above it."""
    docs: dict[str, str] = {}
    keys: list[str] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([*(k for _, k in stack), match.group(2)])
            stack.append((indent, match.group(2)))
            keys.append(path)
            if comment:
                docs[path] = comment[0]
        if not stripped or match or not stripped.startswith("-"):
            comment = []
    return docs, keys


def test_every_value_is_documented_by_a_comment_that_starts_with_its_name() -> None:
    docs, _ = _documented_keys((CHART / "values.yaml").read_text())
    for path, first in docs.items():
        assert first.startswith(f"# -- {path} "), f"{path}: comment starts {first!r}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in values.items():
        if key in docs:
            continue
        assert isinstance(value, dict), f"{key} has no comment"
        undocumented = [f"{key}.{child}" for child in value if f"{key}.{child}" not in docs]
        assert undocumented == [], f"undocumented values: {undocumented}"
    assert len(docs) >= 30


def test_values_are_camel_case() -> None:
    _, keys = _documented_keys((CHART / "values.yaml").read_text())
    top_level = {k.split(".")[0] for k in keys}
    for key in top_level:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key), key


# ---- what is rendered ------------------------------------------------------------------------


def test_defaults_render_the_operator_its_rbac_crd_and_metrics_service(helm: Helm) -> None:
    objects = helm.template()
    assert kinds(objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",  # the Lease's, in the release namespace: election is always on
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",  # the worker guard (docs/security.md)
        "ValidatingAdmissionPolicyBinding",
    ]
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["namespace"] == "resumable-system"
    pod = deployment["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"]
        == only(objects, "ServiceAccount")["metadata"]["name"]
        == "rb-resumable-batch"
    )
    binding = only(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rb-resumable-batch", "namespace": "resumable-system"}
    ]
    assert binding["roleRef"]["name"] == only(objects, "ClusterRole")["metadata"]["name"]


@pytest.mark.parametrize(
    "name", ["defaults", "extra-labels", "one-namespace", "two-replicas-one-namespace"]
)
def test_every_object_carries_the_recommended_labels(helm: Helm, name: str) -> None:
    values = value_set(name)
    objects = helm.template(values)
    for what, meta in all_metadata(objects):
        labels = meta.get("labels") or {}
        missing = [k for k in RECOMMENDED_LABELS if k not in labels]
        assert missing == [], f"{what} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == "rb"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "resumable-batch-0.3.0"
        for key, value in values.get("commonLabels", {}).items():
            assert labels.get(key) == value, f"{what} lacks the extra label {key}"


def test_selector_labels_are_stable_across_upgrades(helm: Helm) -> None:
    deployment = only(helm.template({"commonLabels": {"team": "batch"}}), "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "resumable-batch",
        "app.kubernetes.io/instance": "rb",
    }


def test_operator_runs_with_the_restricted_security_context(helm: Helm) -> None:
    objects = helm.template()
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc
    assert {"name": "tmp", "mountPath": "/tmp"} in container(objects)["volumeMounts"]


def test_operator_has_resources_and_kopfs_liveness_probe(helm: Helm) -> None:
    objects = helm.template()
    c = container(objects)
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert c["resources"]["limits"] == {"memory": "256Mi"}
    probe = c["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081}
    assert env_of(objects)["RESUMABLE_OPERATOR_LIVENESS"] == "http://0.0.0.0:8081/healthz"
    moved = helm.template({"livenessProbe": {"port": 9091}})
    assert env_of(moved)["RESUMABLE_OPERATOR_LIVENESS"] == "http://0.0.0.0:9091/healthz"
    assert "livenessProbe" not in container(helm.template({"livenessProbe": {"enabled": False}}))


def test_operator_settings_come_from_values_as_environment(helm: Helm) -> None:
    env = env_of(helm.template())
    assert env == {
        "RESUMABLE_OPERATOR_NAMESPACES": "",
        "RESUMABLE_OPERATOR_METRICS_PORT": "8080",
        "RESUMABLE_OPERATOR_LOG_LEVEL": "INFO",
        "RESUMABLE_OPERATOR_LOG_FORMAT": "text",
        "RESUMABLE_OPERATOR_WORKERS": "4",
        "RESUMABLE_OPERATOR_KUEUE": "false",
        "RESUMABLE_OPERATOR_LIVENESS": "http://0.0.0.0:8081/healthz",
        "RESUMABLE_OPERATOR_LEADER_ELECTION": "true",
        "RESUMABLE_OPERATOR_LEASE_NAME": "rb-resumable-batch",
    }
    env = env_of(
        helm.template(
            {"logLevel": "DEBUG", "logFormat": "json", "extraEnv": {"HTTPS_PROXY": "http://p:3128"}}
        )
    )
    assert env["RESUMABLE_OPERATOR_LOG_LEVEL"] == "DEBUG"
    assert env["RESUMABLE_OPERATOR_LOG_FORMAT"] == "json"
    assert env["HTTPS_PROXY"] == "http://p:3128"


def test_kopf_identifies_the_operator_by_its_pod_name(helm: Helm) -> None:
    """kopf asks for an identity even when standalone; else it asks the OS for a user name."""
    for values in ({}, {"replicaCount": 2}):
        assert downward_env_of(helm.template(values))["POD_ID"] == "metadata.name"


def test_image_defaults_to_the_app_version_and_a_digest_wins(helm: Helm) -> None:
    assert container(helm.template())["image"] == "resumable-batch/operator:0.3.0"
    tagged = helm.template({"image": {"repository": "registry.example/rb", "tag": "dev"}})
    assert container(tagged)["image"] == "registry.example/rb:dev"
    digest = "sha256:" + "a" * 64
    pinned = helm.template({"image": {"tag": "dev", "digest": digest}})
    assert container(pinned)["image"] == f"resumable-batch/operator@{digest}"


# ---- RBAC ------------------------------------------------------------------------------------


def test_cluster_role_grants_exactly_the_operators_contract(helm: Helm) -> None:
    objects = helm.template()
    assert (
        permissions(only(objects, "ClusterRole")["rules"])
        == NAMESPACED_PERMISSIONS | CLUSTER_PERMISSIONS
    )
    assert [r["metadata"]["name"] for r in of_kind(objects, "Role")] == [
        "rb-resumable-batch-leader-election"  # the Lease's only
    ]


def test_one_namespace_grants_a_role_there_and_nothing_cluster_wide(helm: Helm) -> None:
    objects = helm.template(value_set("one-namespace"))
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []
    # Besides the Lease's Role and RoleBinding in the release namespace, one of each in NS.
    (role,) = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == NS]
    (binding,) = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["namespace"] == NS]
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "rb-resumable-batch"
    assert permissions(role["rules"]) == NAMESPACED_PERMISSIONS
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rb-resumable-batch", "namespace": "resumable-system"}
    ]
    assert env_of(objects)["RESUMABLE_OPERATOR_NAMESPACES"] == NS


def test_kueue_rights_only_when_kueue_is_enabled(helm: Helm) -> None:
    off = helm.template()
    assert env_of(off)["RESUMABLE_OPERATOR_KUEUE"] == "false"
    assert not any(
        group == "kueue.x-k8s.io"
        for rules in (r["rules"] for r in of_kind(off, "ClusterRole"))
        for group, _, _ in permissions(rules)
    )
    on = helm.template({"kueue": {"enabled": True}})
    assert env_of(on)["RESUMABLE_OPERATOR_KUEUE"] == "true"
    roles = {r["metadata"]["name"]: permissions(r["rules"]) for r in of_kind(on, "ClusterRole")}
    assert roles["rb-resumable-batch"] == (
        NAMESPACED_PERMISSIONS | CLUSTER_PERMISSIONS | KUEUE_PERMISSIONS | KUEUE_CLUSTER_PERMISSIONS
    )
    assert "rb-resumable-batch-kueue" not in roles  # cluster-wide: all in the one ClusterRole


def test_kueue_in_one_namespace_reads_its_cluster_objects_and_nothing_more(helm: Helm) -> None:
    objects = helm.template({**value_set("one-namespace"), "kueue": {"enabled": True}})
    (role,) = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == NS]
    assert permissions(role["rules"]) == NAMESPACED_PERMISSIONS | KUEUE_PERMISSIONS
    (cluster,) = of_kind(objects, "ClusterRole")
    assert cluster["metadata"]["name"] == "rb-resumable-batch-kueue"
    assert permissions(cluster["rules"]) == KUEUE_CLUSTER_PERMISSIONS
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "rb-resumable-batch-kueue"


def test_several_namespaces_get_a_role_each(helm: Helm) -> None:
    objects = helm.template({"watchNamespaces": ["a", "b"]})
    watched = ["a", "b", "resumable-system"]  # the last one: the Lease's
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "Role")) == watched
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "RoleBinding")) == watched
    assert env_of(objects)["RESUMABLE_OPERATOR_NAMESPACES"] == "a,b"


def test_rbac_and_service_account_can_be_left_to_the_user(helm: Helm) -> None:
    objects = helm.template(
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}}
    )
    assert kinds(objects) == [
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    proc = helm.run(
        "template", "rb", str(CHART), "--set", "serviceAccount.create=false", check=False
    )
    assert proc.returncode != 0
    assert "serviceAccount.name is required" in proc.stderr


# ---- metrics ---------------------------------------------------------------------------------


def test_metrics_service_selects_the_operator_pods(helm: Helm) -> None:
    objects = helm.template()
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_metrics_off_renders_no_service_port_or_service_monitor(helm: Helm) -> None:
    objects = helm.template({"metrics": {"enabled": False}, "serviceMonitor": {"enabled": True}})
    assert "Service" not in kinds(objects)
    assert "ServiceMonitor" not in kinds(objects)
    assert [p["name"] for p in container(objects)["ports"]] == ["healthz"]
    assert env_of(objects)["RESUMABLE_OPERATOR_METRICS_PORT"] == "0"


def test_service_monitor_when_enabled(helm: Helm) -> None:
    values = {"serviceMonitor": {"enabled": True, "interval": "30s", "labels": {"release": "prom"}}}
    monitor = only(helm.template(values), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["resumable-system"]}


# ---- the CRD ---------------------------------------------------------------------------------


def test_crd_template_is_in_sync_with_crds_dir() -> None:
    for path, text in chart_crds.expected().items():
        assert path.exists(), f"{path.relative_to(REPO_ROOT)} is missing: run `make chart-crds`"
        assert path.read_text() == text, (
            f"{path.relative_to(REPO_ROOT)} is stale: run `make chart-crds`"
        )
    generated = {p.name for p in chart_crds.TEMPLATES_DIR.glob("*.yaml")}
    assert generated == {p.name for p in chart_crds.CRDS_DIR.glob("*.yaml")}


def test_rendered_crd_is_the_generated_crd_plus_chart_metadata(helm: Helm) -> None:
    rendered = only(helm.template(), "CustomResourceDefinition")
    source = yaml.safe_load(
        (REPO_ROOT / "crds" / "resumablebatches.resumable.dev.yaml").read_text()
    )
    meta = rendered.pop("metadata")
    source_meta = source.pop("metadata")
    assert rendered == source
    assert meta["name"] == source_meta["name"]
    assert source_meta["labels"].items() <= meta["labels"].items()
    assert meta["labels"]["app.kubernetes.io/component"] == "crd"


def test_crd_is_kept_on_uninstall_unless_told_otherwise(helm: Helm) -> None:
    kept = only(helm.template(), "CustomResourceDefinition")
    assert kept["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    not_kept = only(helm.template({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert "annotations" not in not_kept["metadata"]
    assert "CustomResourceDefinition" not in kinds(helm.template({"crds": {"enabled": False}}))


# ---- replicas and leader election ------------------------------------------------------------

LEASE_ENV = {"RESUMABLE_OPERATOR_LEASE_NAME", "RESUMABLE_OPERATOR_LEASE_NAMESPACE", "POD_NAME"}
#: Gone with kopf peering: the operator exits with status 2 when either is set.
PEERING_ENV = {"RESUMABLE_OPERATOR_STANDALONE", "RESUMABLE_OPERATOR_PEERING"}


def env_names(objects: list[dict[str, Any]]) -> set[str]:
    return {e["name"] for e in container(objects)["env"]}


def leader_election_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r for r in of_kind(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]


@pytest.mark.parametrize("replicas", [1, 0])
def test_one_replica_elects_a_leader_too_and_never_overlaps(helm: Helm, replicas: int) -> None:
    """Scaled up later (helm upgrade, or kubectl scale, which the chart never sees), the
    pods must already elect a leader: the election's env and Role come with any count."""
    objects = helm.template({"replicaCount": replicas})
    # A lone operator stops (and releases the Lease) before its successor starts.
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(objects)
    assert env["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["RESUMABLE_OPERATOR_LEASE_NAME"] == "rb-resumable-batch"
    downward = downward_env_of(objects)
    assert downward["RESUMABLE_OPERATOR_LEASE_NAMESPACE"] == "metadata.namespace"
    assert downward["POD_NAME"] == "metadata.name"
    assert env_names(objects) >= LEASE_ENV
    assert env_names(objects) & PEERING_ENV == set()
    (role,) = leader_election_roles(objects)
    assert role["metadata"]["namespace"] == "resumable-system"
    assert role["rules"] == lease_rules("rb-resumable-batch")
    binding = only(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == "rb-resumable-batch-leader-election"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rb-resumable-batch", "namespace": "resumable-system"}
    ]
    # The Lease's rights are in that Role only, never cluster-wide.
    rules = permissions(only(objects, "ClusterRole")["rules"])
    assert not any(group == "coordination.k8s.io" for group, _, _ in rules)


def test_scaling_changes_only_replicas_and_strategy(helm: Helm) -> None:
    """From 1 to 2 replicas nothing of the election changes: the pods of a 1-replica
    release scaled with kubectl run what a 2-replica release renders."""
    one, two = helm.template({"replicaCount": 1}), helm.template({"replicaCount": 2})
    assert [o for o in one if o["kind"] != "Deployment"] == [
        o for o in two if o["kind"] != "Deployment"
    ]
    spec1, spec2 = only(one, "Deployment")["spec"], only(two, "Deployment")["spec"]
    assert (spec1["replicas"], spec1["strategy"]) == (1, {"type": "Recreate"})
    assert (spec2["replicas"], spec2["strategy"]) == (2, {"type": "RollingUpdate"})
    assert spec1["template"] == spec2["template"]


def test_more_replicas_elect_a_leader_through_a_lease(helm: Helm) -> None:
    objects = helm.template(value_set("two-replicas"), release="resumable-batch")
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    # A new pod stands by until the old leader releases the Lease as it stops.
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    env = env_of(objects)
    assert env["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["RESUMABLE_OPERATOR_LEASE_NAME"] == "resumable-batch"  # the release's full name
    downward = downward_env_of(objects)
    assert downward["RESUMABLE_OPERATOR_LEASE_NAMESPACE"] == "metadata.namespace"
    assert downward["POD_NAME"] == "metadata.name"
    assert env_names(objects) & PEERING_ENV == set()
    # The Lease's rights: in the release namespace, by name, and nowhere else.
    (role,) = leader_election_roles(objects)
    assert role["metadata"] == role["metadata"] | {
        "name": "resumable-batch-leader-election",
        "namespace": "resumable-system",
    }
    assert role["rules"] == lease_rules("resumable-batch")
    binding = only(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "resumable-system"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "resumable-batch-leader-election",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "resumable-batch", "namespace": "resumable-system"}
    ]
    rules = permissions(only(objects, "ClusterRole")["rules"])
    assert rules == NAMESPACED_PERMISSIONS | CLUSTER_PERMISSIONS


def test_more_replicas_in_one_namespace_keep_the_lease_in_the_release_namespace(
    helm: Helm,
) -> None:
    objects = helm.template(value_set("two-replicas-one-namespace") | {"fullnameOverride": "ops"})
    assert env_of(objects)["RESUMABLE_OPERATOR_LEASE_NAME"] == "ops"
    (lease_role,) = leader_election_roles(objects)
    assert lease_role["metadata"]["namespace"] == "resumable-system"
    assert lease_role["rules"] == lease_rules("ops")
    (watched,) = [r for r in of_kind(objects, "Role") if r["metadata"]["name"] == "ops"]
    assert watched["metadata"]["namespace"] == NS
    assert permissions(watched["rules"]) == NAMESPACED_PERMISSIONS
    assert of_kind(objects, "ClusterRole") == []
    bindings = {
        b["metadata"]["namespace"]: b["roleRef"]["name"] for b in of_kind(objects, "RoleBinding")
    }
    assert bindings == {NS: "ops", "resumable-system": "ops-leader-election"}
    # Watching its own namespace, the release has both Roles there, apart by name.
    own = helm.template({"replicaCount": 2, "watchNamespaces": ["resumable-system"]})
    assert sorted(r["metadata"]["name"] for r in of_kind(own, "Role")) == [
        "rb-resumable-batch",
        "rb-resumable-batch-leader-election",
    ]


@pytest.mark.parametrize("replicas", [1, 2])
def test_rbac_create_false_leaves_the_lease_role_to_the_user(helm: Helm, replicas: int) -> None:
    objects = helm.template({"replicaCount": replicas, "rbac": {"create": False}})
    assert of_kind(objects, "Role") == []
    assert of_kind(objects, "RoleBinding") == []
    assert env_of(objects)["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_nothing_of_kopf_peering_is_rendered(helm: Helm, name: str) -> None:
    objects = helm.template(value_set(name), include_crds=True)
    assert [o["kind"] for o in objects if o["apiVersion"].startswith("kopf.dev/")] == []
    crds = [o["metadata"]["name"] for o in of_kind(objects, "CustomResourceDefinition")]
    assert crds == ["resumablebatches.resumable.dev"]
    for role in [*of_kind(objects, "ClusterRole"), *of_kind(objects, "Role")]:
        assert not any("kopf.dev" in rule["apiGroups"] for rule in role["rules"]), role
    assert env_names(objects) & PEERING_ENV == set()
    assert not (CHART / "crds").exists(), "the chart ships no CRDs in crds/ any more"


def test_chart_files_are_valid_yaml_and_json() -> None:
    for path in [CHART / "Chart.yaml", CHART / "values.yaml"]:
        assert list(yaml.safe_load_all(path.read_text())), path
    json.loads((CHART / "values.schema.json").read_text())


def test_worker_guard_is_rendered_for_kubernetes_1_30_and_later_and_can_be_turned_off(
    helm: Helm,
) -> None:
    guard = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert guard <= set(kinds(helm.template(extra=["--kube-version", "1.30.0"])))
    assert not guard & set(kinds(helm.template(extra=["--kube-version", "1.29.4"])))
    assert not guard & set(kinds(helm.template({"workerGuard": {"enabled": False}})))
    policy = only(helm.template(), "ValidatingAdmissionPolicy")
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["resumablebatches"]  # not status: the checkpoint goes there
    assert rule["operations"] == ["CREATE", "UPDATE", "DELETE"]
    binding = only(helm.template(), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace, as the operator watches


def test_worker_guard_binds_only_the_watched_namespaces(helm: Helm) -> None:
    binding = only(
        helm.template({"watchNamespaces": ["a", "b"]}), "ValidatingAdmissionPolicyBinding"
    )
    (expr,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert expr == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}
