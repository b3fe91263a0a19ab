"""The chart's RBAC is enough for the operator, and no more, on the real API server.

The chart's ServiceAccount and (Cluster)Role are applied for real. Then:

- the API server's authorizer (SubjectAccessReview) allows every permission of the
  operator's contract where the operator works, and denies everything else tried;
- the operator itself runs the shared failure scenarios (tests/scenarios.py) with
  the ServiceAccount's token instead of the admin's, and they pass.
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from resumable._kubeapi import KubeApi
from scenarios import SCENARIOS, Scenario, manifest
from tests.chart.chartlib import (
    CHART,
    CLUSTER_PEERING,
    CLUSTER_PERMISSIONS,
    FORBIDDEN,
    NAMESPACED_PEERING,
    NAMESPACED_PERMISSIONS,
    Helm,
    Permission,
    env_of,
    substitute,
)
from tests.integration.harness import Batches, OperatorProcess, outputs_in, wait_for

pytestmark = pytest.mark.integration

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass(frozen=True)
class Installed:
    """The chart's RBAC applied to the cluster for one release."""

    release_namespace: str
    service_account: str
    objects: list[dict[str, Any]]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release_namespace}:{self.service_account}"

    def env(self) -> dict[str, str]:
        return env_of(self.objects)


@contextlib.contextmanager
def chart_rbac(
    helm: Helm, controlplane: Any, release_namespace: str, values: dict[str, Any]
) -> Iterator[Installed]:
    """Apply the chart's ServiceAccount and RBAC objects for real; delete them afterwards."""
    release = "rb" + release_namespace.rsplit("-", 1)[-1]
    objects = helm.template(values, release=release, namespace=release_namespace)
    rbac = [o for o in objects if o["kind"] in RBAC_KINDS]
    text = yaml.safe_dump_all(rbac)
    controlplane.kubectl("apply", "-f", "-", input=text, check=True)
    (account,) = [o for o in rbac if o["kind"] == "ServiceAccount"]
    try:
        yield Installed(release_namespace, account["metadata"]["name"], objects)
    finally:
        controlplane.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=text)


@pytest.fixture
def operator_namespace(controlplane: Any, namespace: str) -> Iterator[str]:
    """A second namespace to install the operator in, apart from the one it watches."""
    name = f"{namespace[:55]}-op"
    controlplane.create_namespace(name)
    try:
        yield name
    finally:
        controlplane.delete_namespace(name)


@pytest.fixture
def cluster_wide(helm: Helm, controlplane: Any, namespace: str) -> Iterator[Installed]:
    with chart_rbac(helm, controlplane, namespace, {}) as installed:
        yield installed


@pytest.fixture
def one_namespace(
    helm: Helm, controlplane: Any, namespace: str, operator_namespace: str
) -> Iterator[Installed]:
    """Installed in operator_namespace, watching the test's namespace only."""
    with chart_rbac(
        helm, controlplane, operator_namespace, {"watchNamespaces": [namespace]}
    ) as installed:
        yield installed


def allowed(k8s_client: Any, user: str, permission: Permission, namespace: str = "") -> bool:
    """The API server's own authorization decision (SubjectAccessReview)."""
    from kubernetes import client

    group, resource, verb = permission
    resource, _, subresource = resource.partition("/")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{user.split(':')[2]}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                group=group,
                resource=resource,
                subresource=subresource or None,
                verb=verb,
                namespace=namespace or None,
            ),
        )
    )
    result = client.AuthorizationV1Api(k8s_client).create_subject_access_review(review)
    return result.status is not None and bool(result.status.allowed)


def decisions(
    k8s_client: Any, user: str, wanted: set[Permission], namespace: str = ""
) -> dict[Permission, bool]:
    return {p: allowed(k8s_client, user, p, namespace) for p in sorted(wanted)}


def test_cluster_wide_rbac_allows_the_contract_in_every_namespace(
    cluster_wide: Installed, k8s_client: Any, namespace: str
) -> None:
    user = cluster_wide.user
    for where in (namespace, "default"):
        denied = [
            p
            for p, ok in decisions(k8s_client, user, NAMESPACED_PERMISSIONS, where).items()
            if not ok
        ]
        assert denied == [], f"denied in {where}: {denied}"
    denied = [p for p, ok in decisions(k8s_client, user, CLUSTER_PERMISSIONS).items() if not ok]
    assert denied == []


def test_cluster_wide_rbac_denies_everything_else(
    cluster_wide: Installed, k8s_client: Any, namespace: str
) -> None:
    user = cluster_wide.user
    extra = {
        ("", "namespaces", "list"),  # kopf does not list namespaces when it watches them all
        *CLUSTER_PEERING,  # only with more than one replica
    }
    granted = [
        p for p, ok in decisions(k8s_client, user, {*FORBIDDEN, *extra}, namespace).items() if ok
    ]
    assert granted == []


def test_one_namespace_rbac_allows_the_contract_there_only(
    one_namespace: Installed, k8s_client: Any, namespace: str, operator_namespace: str
) -> None:
    user = one_namespace.user
    ok = decisions(k8s_client, user, NAMESPACED_PERMISSIONS, namespace)
    assert [p for p, yes in ok.items() if not yes] == []
    for elsewhere in (operator_namespace, "default", ""):
        granted = [
            p
            for p, yes in decisions(k8s_client, user, NAMESPACED_PERMISSIONS, elsewhere).items()
            if yes
        ]
        assert granted == [], f"granted in {elsewhere or 'the cluster scope'}: {granted}"
    cluster = {*CLUSTER_PERMISSIONS, *CLUSTER_PEERING, ("", "namespaces", "list")}
    assert [p for p, yes in decisions(k8s_client, user, cluster).items() if yes] == []
    assert [
        p for p, yes in decisions(k8s_client, user, set(FORBIDDEN), namespace).items() if yes
    ] == []


@pytest.mark.parametrize(
    ("values", "expected", "where"),
    [
        ({"replicaCount": 2}, CLUSTER_PEERING, ""),
        (
            {"replicaCount": 2, "watchNamespaces": ["{namespace}"]},
            NAMESPACED_PEERING,
            "{namespace}",
        ),
    ],
    ids=["cluster-wide", "one-namespace"],
)
def test_peering_rbac_comes_with_more_replicas(
    helm: Helm,
    controlplane: Any,
    k8s_client: Any,
    namespace: str,
    operator_namespace: str,
    values: dict[str, Any],
    expected: set[Permission],
    where: str,
) -> None:
    values = substitute(values, namespace=namespace)
    with chart_rbac(helm, controlplane, operator_namespace, values) as installed:
        result = decisions(k8s_client, installed.user, expected, where.format(namespace=namespace))
        assert all(result.values()), result


# ---- the operator itself, as the chart's ServiceAccount ---------------------------------------

#: What kopf tries and tolerates being denied in namespaced mode: listing and watching
#: namespaces (to resolve patterns) and CRDs (to notice new ones). It logs a warning
#: and carries on with the names it was given.
OPTIONAL_IN_ONE_NAMESPACE = {
    ("list", "namespaces"),
    ("watch", "namespaces"),
    ("list", "customresourcedefinitions"),
    ("watch", "customresourcedefinitions"),
}
_DENIAL = re.compile(r'cannot (\w+) resource \\*"([\w./-]+)\\*"')


def denials(log: str) -> set[tuple[str, str]]:
    """(verb, resource) of every RBAC denial the operator's log mentions."""
    return set(_DENIAL.findall(log))


def service_account_kubeconfig(controlplane: Any, installed: Installed, path: Path) -> Path:
    """A kubeconfig with a token of the chart's ServiceAccount (TokenRequest)."""
    proc = controlplane.kubectl(
        "create",
        "token",
        installed.service_account,
        "-n",
        installed.release_namespace,
        "--duration=2h",
        check=True,
    )
    kubeconfig: Path = controlplane.token_kubeconfig(path, proc.stdout.strip())
    return kubeconfig


@pytest.fixture
def api(kubeconfig: Path) -> KubeApi:
    return KubeApi.from_environment(kubeconfig=str(kubeconfig))


def _run_as_chart(
    controlplane: Any, installed: Installed, namespace: str, tmp_path: Path, *, namespaces: str
) -> OperatorProcess:
    env = installed.env()
    env.pop("RESUMABLE_OPERATOR_METRICS_PORT")  # the harness picks free ports
    env.pop("RESUMABLE_OPERATOR_LIVENESS")
    env["RESUMABLE_OPERATOR_NAMESPACES"] = namespaces
    assert env["RESUMABLE_OPERATOR_STANDALONE"] == "true"
    sa_kubeconfig = service_account_kubeconfig(
        controlplane, installed, tmp_path / "operator.kubeconfig"
    )
    return OperatorProcess(sa_kubeconfig, namespace, tmp_path / "operator.log", env=env).start()


def _check_scenario(batches: Batches, scenario: Scenario, name: str, out: Path) -> None:
    obj = batches.wait_ended(name)
    status = obj["status"]
    assert status["phase"] == scenario.phase, status
    assert status["restarts"] == scenario.restarts, status
    if scenario.outputs is not None:
        skipped = {n - 1 for n in scenario.skipped}
        assert outputs_in(out) == sorted(set(range(scenario.items)) - skipped)


def test_operator_passes_the_scenarios_as_the_one_namespace_service_account(
    controlplane: Any,
    kubelet: Any,
    one_namespace: Installed,
    namespace: str,
    api: KubeApi,
    tmp_path: Path,
) -> None:
    env = one_namespace.env()
    operator = _run_as_chart(
        controlplane,
        one_namespace,
        namespace,
        tmp_path,
        namespaces=env["RESUMABLE_OPERATOR_NAMESPACES"],
    )
    batches = Batches(api, namespace)
    try:
        for index, scenario in enumerate(SCENARIOS):
            name, out = f"s{index}-{scenario.id}"[:50], tmp_path / f"out-{index}"
            batches.create(manifest(scenario, name, env={"RESUMABLE_OUTPUT_DIR": str(out)}))
            _check_scenario(batches, scenario, name, out)
        assert "resuming at item 21/50" in kubelet.read_log(namespace, f"s0-{SCENARIOS[0].id}-2")
    finally:
        operator.stop()
        log = operator.log()
        print("---- operator log (tail) ----\n" + "\n".join(log.splitlines()[-60:]))
    assert denials(log) <= OPTIONAL_IN_ONE_NAMESPACE, denials(log)


def test_operator_resumes_a_batch_as_the_cluster_wide_service_account(
    controlplane: Any,
    kubelet: Any,
    cluster_wide: Installed,
    namespace: str,
    api: KubeApi,
    tmp_path: Path,
) -> None:
    operator = _run_as_chart(controlplane, cluster_wide, namespace, tmp_path, namespaces="")
    batches = Batches(api, namespace)
    scenario, out = SCENARIOS[0], tmp_path / "out"
    try:
        batches.create(manifest(scenario, "recovery", env={"RESUMABLE_OUTPUT_DIR": str(out)}))
        _check_scenario(batches, scenario, "recovery", out)
        assert "resuming at item 21/50" in kubelet.read_log(namespace, "recovery-2")
    finally:
        operator.stop()
        log = operator.log()
        print("---- operator log (tail) ----\n" + "\n".join(log.splitlines()[-60:]))
    assert denials(log) == set()


def test_two_replicas_keep_exactly_one_operator_active(
    helm: Helm,
    controlplane: Any,
    kubelet: Any,
    namespace: str,
    operator_namespace: str,
    api: KubeApi,
    tmp_path: Path,
) -> None:
    """replicaCount=2: both operators run as the chart's ServiceAccount, kopf peering pauses one."""
    controlplane.install_crds([CHART / "crds" / "kopf-peerings.yaml"])
    values = {"replicaCount": 2, "watchNamespaces": [namespace]}
    with chart_rbac(helm, controlplane, operator_namespace, values) as installed:
        peering = [o for o in installed.objects if o["kind"] == "KopfPeering"]
        controlplane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(peering), check=True)
        env = installed.env()
        assert env["RESUMABLE_OPERATOR_STANDALONE"] == "false"
        env.pop("RESUMABLE_OPERATOR_METRICS_PORT")
        env.pop("RESUMABLE_OPERATOR_LIVENESS")
        sa_kubeconfig = service_account_kubeconfig(
            controlplane, installed, tmp_path / "operator.kubeconfig"
        )
        operators = [
            OperatorProcess(
                sa_kubeconfig, namespace, tmp_path / f"operator-{i}.log", env=env
            ).start()
            for i in (1, 2)
        ]
        batches = Batches(api, namespace)
        scenario, out = SCENARIOS[0], tmp_path / "out"

        def ended_or_deadlocked() -> str | None:
            if any(ALL_PAUSED in op.log() for op in operators):
                return ALL_PAUSED
            phase = (batches.get("recovery").get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        try:
            batches.create(manifest(scenario, "recovery", env={"RESUMABLE_OUTPUT_DIR": str(out)}))
            outcome = wait_for(
                "the batch to end (or every replica to pause)", ended_or_deadlocked, timeout=180
            )
            assert outcome != ALL_PAUSED, "kopf paused every replica: they share one priority"
            _check_scenario(batches, scenario, "recovery", out)
        finally:
            # Killed, not stopped: a replica that exits cleanly leaves the peering at once
            # and the standby takes over, which would blur who did the work.
            for op in operators:
                op.stop(sig=signal.SIGKILL)
            logs = [op.log() for op in operators]
            for i, log in enumerate(logs, 1):
                print(f"---- operator {i} log (tail) ----\n" + "\n".join(log.splitlines()[-40:]))
    # A replica may work alone for a moment before the other joins the peering and takes
    # over (kopf's handover is eventually consistent); the batch's outcome above shows
    # nothing was done twice. In the end, one replica is active and the other stands by.
    assert sorted(peering_state(log) for log in logs) == ["active", "standby"]
    assert all(denials(log) <= OPTIONAL_IN_ONE_NAMESPACE for log in logs)


def peering_state(log: str) -> str:
    """A replica's last peering decision: with mandatory peering it starts paused."""
    decisions = re.findall(
        r"(Resuming operations after the pause|Pausing operations|Pausing all operators)", log
    )
    return "active" if decisions and decisions[-1].startswith("Resuming") else "standby"


#: What kopf logs when peers of the same priority meet: every one of them stops working.
ALL_PAUSED = "Pausing all operators, including self"
