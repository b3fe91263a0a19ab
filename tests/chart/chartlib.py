"""Helpers for the chart tests: find helm, render the chart, pick objects out of it.

helm comes from $HELM or tests/tools/helm.sh (built once from its Go module and
cached). Used by the unit tests (render only) and the integration tests (the
rendered objects applied to the test API server) in this directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "resumable-batch"
HELM_SCRIPT = REPO_ROOT / "tests" / "tools" / "helm.sh"

#: The recommended labels every object carries (https://helm.sh/docs/chart_best_practices/labels/).
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)

#: The non-default value sets the chart is tested with, besides the defaults.
#: ``{namespace}`` is replaced by the test's namespace where one is needed.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "one-namespace": {"watchNamespaces": ["{namespace}"]},
    "metrics-off": {"metrics": {"enabled": False}},
    "extra-labels": {"commonLabels": {"team": "batch", "cost-center": "c42"}},
    "two-replicas": {"replicaCount": 2},
    "two-replicas-one-namespace": {"replicaCount": 2, "watchNamespaces": ["{namespace}"]},
    "kueue": {"kueue": {"enabled": True}},
    "kueue-one-namespace": {"kueue": {"enabled": True}, "watchNamespaces": ["{namespace}"]},
}


class HelmUnavailableError(RuntimeError):
    """helm is not at hand and cannot be built here."""


def find_helm() -> str:
    """The helm binary: $HELM, else the cached build, else build it now (minutes, once)."""
    explicit = os.environ.get("HELM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise HelmUnavailableError(f"HELM={explicit} is not an executable")
        return explicit
    proc = subprocess.run(["bash", str(HELM_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise HelmUnavailableError(f"tests/tools/helm.sh failed ({proc.returncode}): {tail}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Helm:
    """A helm binary, run with a private HOME-like environment (no user repos or plugins)."""

    binary: str
    home: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "HELM_CACHE_HOME": str(self.home / "cache"),
                "HELM_CONFIG_HOME": str(self.home / "config"),
                "HELM_DATA_HOME": str(self.home / "data"),
            }
        )
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def values_file(self, values: Mapping[str, Any], name: str = "values") -> Path:
        """Write values as a file for -f (JSON is YAML)."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / f"{name}-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
        path.write_text(json.dumps(values))
        return path

    def template_text(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "rb",
        namespace: str = "resumable-system",
        include_crds: bool = False,
        extra: Iterable[str] = (),
    ) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if values:
            args += ["-f", str(self.values_file(values))]
        if include_crds:
            args.append("--include-crds")
        return self.run(*args, *extra).stdout

    def template(
        self, values: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """The rendered objects (documents that are not empty)."""
        return [d for d in yaml.safe_load_all(self.template_text(values, **kwargs)) if d]


def substitute(values: Any, **names: str) -> Any:
    """VALUE_SETS with ``{namespace}``-style placeholders filled in."""
    if isinstance(values, dict):
        return {k: substitute(v, **names) for k, v in values.items()}
    if isinstance(values, list):
        return [substitute(v, **names) for v in values]
    if isinstance(values, str):
        return values.format(**names)
    return values


def kinds(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def only(objects: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of that kind."""
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return dict(found[0])


def of_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(o) for o in objects if o["kind"] == kind]


def container(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The operator container of the Deployment."""
    deployment = only(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


def env_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The operator container's literal environment variables."""
    return {e["name"]: e["value"] for e in container(objects)["env"] if "value" in e}


def downward_env_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The operator container's variables from the downward API: name -> fieldPath."""
    return {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container(objects)["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }


Permission = tuple[str, str, str]  # (apiGroup, resource, verb)


def permissions(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """Expand RBAC rules into (group, resource, verb) triples; resourceNames are not used
    (the one rule with them, the leader election's, is checked whole: lease_rules)."""
    out: set[Permission] = set()
    for rule in rules:
        assert "resourceNames" not in rule, rule
        assert "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def grant(group: str, resources: Iterable[str], verbs: Iterable[str]) -> set[Permission]:
    return {(group, r, v) for r in resources for v in verbs}


#: What the operator needs in every namespace it manages (the operator's contract).
NAMESPACED_PERMISSIONS: set[Permission] = (
    grant(
        "resumable.dev", ["resumablebatches"], ["get", "list", "watch", "patch", "update", "delete"]
    )
    | grant("resumable.dev", ["resumablebatches/status"], ["get", "patch", "update"])
    | grant("resumable.dev", ["resumablebatches/finalizers"], ["update"])
    | grant("", ["pods"], ["get", "list", "watch", "create", "delete"])
    | grant("", ["events"], ["create", "patch"])
    | grant("events.k8s.io", ["events"], ["create", "patch"])
    | grant("", ["serviceaccounts"], ["get", "create"])
    | grant("rbac.authorization.k8s.io", ["roles"], ["get", "create", "patch"])
    | grant("rbac.authorization.k8s.io", ["rolebindings"], ["get", "create"])
)
#: Cluster-wide extras when watching every namespace: kopf notices CRDs appearing.
#: What kueue.enabled adds: in each watched namespace (or cluster-wide) ...
KUEUE_PERMISSIONS: set[Permission] = grant(
    "kueue.x-k8s.io", ["workloads"], ["get", "list", "watch", "create", "delete"]
) | grant("kueue.x-k8s.io", ["workloads/status"], ["get", "patch"])
#: ... and cluster-scoped reads, whatever the namespaces.
KUEUE_CLUSTER_PERMISSIONS: set[Permission] = grant(
    "kueue.x-k8s.io", ["resourceflavors", "workloadpriorityclasses"], ["get"]
) | grant("scheduling.k8s.io", ["priorityclasses"], ["get"])

CLUSTER_PERMISSIONS: set[Permission] = grant(
    "apiextensions.k8s.io", ["customresourcedefinitions"], ["get", "list", "watch"]
)


def lease_rules(lease: str) -> list[dict[str, Any]]:
    """The leader election's rules (the operator's contract), in the release namespace only:
    create a Lease (create cannot be limited to a name), get and update only its own."""
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease],
            "verbs": ["get", "update"],
        },
    ]


#: What the leader election may do with Leases (its own Lease's name aside).
LEASE_PERMISSIONS: set[Permission] = grant("coordination.k8s.io", ["leases"], ["create"]) | grant(
    "coordination.k8s.io", ["leases"], ["get", "update"]
)
#: What it never needs with Leases, not even its own.
LEASE_FORBIDDEN: set[Permission] = grant(
    "coordination.k8s.io", ["leases"], ["list", "watch", "patch", "delete", "deletecollection"]
)
#: kopf's peering objects: no longer used, so granted by no value set.
KOPF_PEERING: set[Permission] = grant(
    "kopf.dev",
    ["clusterkopfpeerings", "kopfpeerings"],
    ["get", "list", "watch", "patch", "create", "update"],
)

#: Things the operator never needs; each must be denied wherever it runs.
FORBIDDEN: list[Permission] = [
    ("", "secrets", "get"),
    ("", "secrets", "list"),
    ("", "configmaps", "get"),
    ("", "pods", "update"),
    ("", "pods/exec", "create"),
    ("", "pods/log", "get"),
    ("", "serviceaccounts/token", "create"),
    ("", "serviceaccounts", "delete"),
    ("", "nodes", "list"),
    ("", "namespaces", "delete"),
    ("apps", "deployments", "create"),
    ("batch", "jobs", "create"),
    ("resumable.dev", "resumablebatches", "create"),
    ("rbac.authorization.k8s.io", "roles", "update"),
    ("rbac.authorization.k8s.io", "roles", "escalate"),
    ("rbac.authorization.k8s.io", "roles", "bind"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "delete"),
]
