"""The chart's RBAC is enough for the operator, and no more, on the real API server.

The chart's ServiceAccount and (Cluster)Role are applied for real. Then:

- the API server's authorizer (SubjectAccessReview) allows every permission of the
  operator's contract where the operator works, and denies everything else tried;
- the operator itself runs the shared failure scenarios (tests/scenarios.py) with
  the ServiceAccount's token instead of the admin's, and they pass;
- the Lease's rights come with any replicaCount, 1 included, in the release namespace
  and for the release's Lease only;
- with two replicas, both run with the chart's environment and ServiceAccount: the
  Lease elects one, only it works, and the other takes over when it dies; and a
  1-replica release scaled to two with kubectl (the chart's 1-replica environment
  twice) elects one leader too.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from resumable.kubeapi import KubeApi
from scenarios import NO_BACKOFF, SCENARIOS, Scenario, manifest
from tests.chart.chartlib import (
    CLUSTER_PERMISSIONS,
    FORBIDDEN,
    KOPF_PEERING,
    LEASE_FORBIDDEN,
    LEASE_PERMISSIONS,
    NAMESPACED_PERMISSIONS,
    Helm,
    Permission,
    env_of,
    substitute,
)
from tests.integration.harness import Batches, OperatorProcess, free_port, outputs_in
from tests.waiting import wait_for

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
LEASES = ("coordination.k8s.io", "leases")


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


def allowed(
    k8s_client: Any, user: str, permission: Permission, namespace: str = "", name: str = ""
) -> bool:
    """The API server's own authorization decision (SubjectAccessReview); name is the
    object's (for rules with resourceNames), empty for any."""
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
                name=name or None,
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
        *LEASE_FORBIDDEN,
        *KOPF_PEERING,  # not used any more
    }
    # namespace is the release's too: its Lease rights are checked whole below
    # (test_lease_rbac_is_for_the_releases_lease_only); here only what is never granted.
    granted = [
        p for p, ok in decisions(k8s_client, user, {*FORBIDDEN, *extra}, namespace).items() if ok
    ]
    assert granted == []
    # Outside the release namespace, no Lease rights at all.
    for where in ("default", ""):
        granted = [
            p for p, ok in decisions(k8s_client, user, LEASE_PERMISSIONS, where).items() if ok
        ]
        assert granted == [], f"granted in {where or 'the cluster scope'}: {granted}"


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
    cluster = {*CLUSTER_PERMISSIONS, *KOPF_PEERING, *LEASE_PERMISSIONS, ("", "namespaces", "list")}
    assert [p for p, yes in decisions(k8s_client, user, cluster).items() if yes] == []
    assert [
        p for p, yes in decisions(k8s_client, user, set(FORBIDDEN), namespace).items() if yes
    ] == []
    # One replica elects itself too: Lease rights in the release namespace only (any Lease:
    # create, which cannot be limited to a name; its own by name: see the Lease test).
    leases = {*LEASE_PERMISSIONS, *LEASE_FORBIDDEN, *KOPF_PEERING}
    assert [p for p, yes in decisions(k8s_client, user, leases, namespace).items() if yes] == []
    assert [
        p for p, yes in decisions(k8s_client, user, leases, operator_namespace).items() if yes
    ] == [(*LEASES, "create")]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": ["{namespace}"]},
        {"replicaCount": 2},
        {"replicaCount": 2, "watchNamespaces": ["{namespace}"]},
    ],
    ids=["one-replica", "one-replica-one-namespace", "two-replicas", "two-replicas-one-namespace"],
)
def test_lease_rbac_is_for_the_releases_lease_only(
    helm: Helm,
    controlplane: Any,
    k8s_client: Any,
    namespace: str,
    operator_namespace: str,
    values: dict[str, Any],
) -> None:
    """Whatever replicaCount (so that scaling later is safe): create a Lease, get and
    update the release's own, in the release namespace, and nothing else."""
    values = substitute(values, namespace=namespace)
    with chart_rbac(helm, controlplane, operator_namespace, values) as installed:
        user, lease = installed.user, installed.env()["RESUMABLE_OPERATOR_LEASE_NAME"]
        assert installed.env()["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"

        def may(verb: str, where: str, name: str = "") -> bool:
            return allowed(k8s_client, user, (*LEASES, verb), where, name)

        # In the release namespace: create a Lease, get and update (renew, take over) its own.
        assert may("create", operator_namespace)
        assert may("get", operator_namespace, lease)
        assert may("update", operator_namespace, lease)
        # Nothing else there: another Lease, or its own in any other way.
        for verb in ("get", "update"):
            assert not may(verb, operator_namespace, "someone-elses-lease"), verb
            assert not may(verb, operator_namespace), f"{verb} any Lease"
        for verb in ("patch", "delete"):
            assert not may(verb, operator_namespace, lease), verb
        for verb in ("list", "watch", "deletecollection"):
            assert not may(verb, operator_namespace), verb
        # No Lease rights anywhere else, its own name included.
        for elsewhere in (namespace, "default", ""):
            assert not may("create", elsewhere), f"create in {elsewhere or 'the cluster scope'}"
            assert not may("get", elsewhere, lease), f"get in {elsewhere or 'the cluster scope'}"
            assert not may("update", elsewhere, lease), elsewhere or "the cluster scope"
        # And nothing of kopf's peering, wherever.
        for where in (operator_namespace, namespace, ""):
            granted = [
                p for p, ok in decisions(k8s_client, user, KOPF_PEERING, where).items() if ok
            ]
            assert granted == [], f"granted in {where or 'the cluster scope'}: {granted}"


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


def _run_as_chart(
    controlplane: Any, installed: Installed, namespace: str, tmp_path: Path, *, namespaces: str
) -> OperatorProcess:
    env = installed.env()
    env.pop("RESUMABLE_OPERATOR_METRICS_PORT")  # the harness picks free ports
    env.pop("RESUMABLE_OPERATOR_LIVENESS")
    env["RESUMABLE_OPERATOR_NAMESPACES"] = namespaces
    # One replica elects itself: the Lease from the chart's Role, in the release namespace
    # (what the downward API gives the pod), so its rights are exercised too.
    assert env["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"
    env["RESUMABLE_OPERATOR_LEASE_NAMESPACE"] = installed.release_namespace
    env["POD_NAME"] = f"{installed.service_account}-0"
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
    assert "leading: " in log  # the one replica took the Lease with the chart's rights
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
    assert "leading: " in log  # the one replica took the Lease with the chart's rights
    assert denials(log) == set()


#: The chart's replicas, run here with a short Lease so that a takeover is quick.
LEASE_SECONDS = 4
_LEADING = re.compile(r"leading: (\S+) holds lease (\S+)/(\S+)")
_STANDBY = re.compile(r"standby: lease (\S+)/(\S+) is held by (\S+)")


class Replica(OperatorProcess):
    """One of the chart's replicas. start() returns once the process runs: a standby
    need not serve /metrics (the harness's sign of readiness) before it leads."""

    def _metrics_up(self) -> bool:
        self.check_running()
        return True

    def check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited {self.process.returncode}:\n{self.log()}")


def healthz(port: int) -> int:
    """The HTTP status of a replica's liveness endpoint (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return int(r.status)
    except OSError:
        return 0


class ChartReplicas:
    """Operator processes run as the pods of one chart release: the chart's environment
    and ServiceAccount, what the downward API gives a pod (its name, the release
    namespace) and a short Lease."""

    def __init__(
        self,
        controlplane: Any,
        k8s_client: Any,
        installed: Installed,
        namespace: str,
        tmp_path: Path,
        count: int,
    ) -> None:
        env = installed.env()
        assert env["RESUMABLE_OPERATOR_LEADER_ELECTION"] == "true"
        self.lease = env["RESUMABLE_OPERATOR_LEASE_NAME"]
        self.lease_namespace = installed.release_namespace
        env.pop("RESUMABLE_OPERATOR_METRICS_PORT")  # the harness picks free ports
        env.pop("RESUMABLE_OPERATOR_LIVENESS")
        env["RESUMABLE_OPERATOR_LEASE_NAMESPACE"] = installed.release_namespace
        env["RESUMABLE_OPERATOR_LEASE_SECONDS"] = str(LEASE_SECONDS)
        self.env = env
        self.k8s_client = k8s_client
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.kubeconfig = service_account_kubeconfig(
            controlplane, installed, tmp_path / "operator.kubeconfig"
        )
        self.pods = [f"{installed.service_account}-{i}" for i in range(1, count + 1)]
        self.liveness = [free_port() for _ in self.pods]
        self.operators: list[Replica] = []

    def start(self) -> Replica:
        """Start the next pod."""
        pod, port = self.pods[len(self.operators)], self.liveness[len(self.operators)]
        replica_env = self.env | {
            "POD_NAME": pod,
            "RESUMABLE_OPERATOR_LIVENESS": f"http://127.0.0.1:{port}/healthz",
        }
        replica = Replica(
            self.kubeconfig, self.namespace, self.tmp_path / f"{pod}.log", env=replica_env
        )
        self.operators.append(replica)
        replica.start()
        return replica

    def holder(self) -> str | None:
        """The Lease's holder as the API server has it."""
        from kubernetes import client

        obj = client.CoordinationV1Api(self.k8s_client).read_namespaced_lease(
            self.lease, self.lease_namespace
        )
        return (obj.spec and obj.spec.holder_identity) or None

    def roles(self) -> list[str] | None:
        """Each replica's role once all decided ("leading" or "standby")."""
        for op in self.operators:
            op.check_running()
        found = [
            "leading" if "leading: " in op.log() else "standby" if "standby: " in op.log() else ""
            for op in self.operators
        ]
        assert found.count("leading") <= 1, f"two replicas lead: {found}"
        return found if all(found) else None

    def elected(self) -> tuple[int, int, str]:
        """Wait until one of two leads and the other stands by, seeing the leader as the
        holder; (leader's index, standby's index, leader's identity)."""
        found = wait_for(self.roles, what="one replica to lead, the other to stand by", timeout=30)
        assert sorted(found) == ["leading", "standby"], found
        lead, standby = found.index("leading"), found.index("standby")
        match = _LEADING.search(self.operators[lead].log())
        assert match is not None
        identity = match.group(1)
        assert identity.startswith(self.pods[lead]), f"{identity} is not {self.pods[lead]}'s"
        assert match.group(2, 3) == (self.lease_namespace, self.lease)
        seen = _STANDBY.search(self.operators[standby].log())
        assert seen is not None
        assert seen.groups() == (self.lease_namespace, self.lease, identity)
        assert self.holder() == identity
        return lead, standby, identity

    def stop_all(self) -> list[str]:
        """Kill every replica; their logs (tails printed)."""
        for op in self.operators:
            op.stop(sig=signal.SIGKILL)
        logs = [op.log() for op in self.operators]
        for pod, log in zip(self.pods, logs, strict=False):
            print(f"---- {pod} log (tail) ----\n" + "\n".join(log.splitlines()[-40:]))
        return logs


#: A small batch that ends at once, to see which replica works.
SMALL = Scenario(
    id="small",
    items=5,
    fault={},
    retry={"maxRestarts": 1, "backoff": NO_BACKOFF},
    phase="Succeeded",
    restarts=0,
    outputs=5,
)


def test_two_replicas_keep_exactly_one_operator_active(
    helm: Helm,
    controlplane: Any,
    kubelet: Any,
    k8s_client: Any,
    namespace: str,
    operator_namespace: str,
    api: KubeApi,
    tmp_path: Path,
) -> None:
    """replicaCount=2: both operators run with the chart's environment as its ServiceAccount;
    the Lease elects one, only it works, and the other takes over when it is killed. Then a
    rollout's handover: a third replica takes over at once from a leader that stops."""
    values = {"replicaCount": 2, "watchNamespaces": [namespace]}
    with chart_rbac(helm, controlplane, operator_namespace, values) as installed:
        replicas = ChartReplicas(controlplane, k8s_client, installed, namespace, tmp_path, 3)
        operators, pods, liveness, holder = (
            replicas.operators,
            replicas.pods,
            replicas.liveness,
            replicas.holder,
        )
        batches = Batches(api, namespace)
        try:
            replicas.start()
            replicas.start()

            # Exactly one leads; the other stands by, and sees the leader as the holder.
            lead, standby, identity = replicas.elected()
            # The chart probes every replica's /healthz: a standby must answer too.
            assert healthz(liveness[standby]) == 200, "the livenessProbe would restart a standby"

            # The leader runs the batch to its right end; the standby does nothing.
            scenario, out = SCENARIOS[0], tmp_path / "out"
            batches.create(manifest(scenario, "recovery", env={"RESUMABLE_OUTPUT_DIR": str(out)}))
            _check_scenario(batches, scenario, "recovery", out)
            assert f"{namespace}/recovery " in operators[lead].log()  # its Accepted, Started...
            assert f"{namespace}/recovery " not in operators[standby].log()
            assert "leading: " not in operators[standby].log()
            assert holder() == identity

            # The leader dies without releasing the Lease: the standby takes it once it expires.
            killed_at = time.monotonic()
            operators[lead].stop(sig=signal.SIGKILL)
            wait_for(
                lambda: _LEADING.search(operators[standby].log()),
                what="the standby to take the Lease",
                timeout=5 * LEASE_SECONDS,
            )
            took = time.monotonic() - killed_at
            successor = _LEADING.search(operators[standby].log())
            assert successor is not None
            assert successor.group(1).startswith(pods[standby])
            assert successor.group(1) != identity
            assert holder() == successor.group(1)
            print(f"takeover after SIGKILL: {took:.1f}s (lease {LEASE_SECONDS}s)")

            # And it does the work now: a second, small batch ends as it should.
            out = tmp_path / "out-after"
            batches.create(manifest(SMALL, "after", env={"RESUMABLE_OUTPUT_DIR": str(out)}))
            _check_scenario(batches, SMALL, "after", out)
            assert f"{namespace}/after " in operators[standby].log()

            # A rollout: a new replica stands by, the leader stops gracefully (SIGTERM) and
            # releases the Lease, so the new one leads sooner than a lease duration.
            newcomer = replicas.start()
            wait_for(lambda: "standby: " in newcomer.log(), what="the new replica to stand by")
            stopped_at = time.monotonic()
            operators[standby].stop()
            wait_for(
                lambda: _LEADING.search(newcomer.log()),
                what="the new replica to take the released Lease",
                timeout=2 * LEASE_SECONDS,
            )
            handover = time.monotonic() - stopped_at
            third = _LEADING.search(newcomer.log())
            assert third is not None
            assert third.group(1).startswith(pods[2])
            assert holder() == third.group(1)
            print(f"handover after SIGTERM: {handover:.1f}s (lease {LEASE_SECONDS}s)")
            assert handover < LEASE_SECONDS, "the stopping leader did not release the Lease"
        finally:
            logs = replicas.stop_all()
    assert all("lost lease" not in log for log in logs)
    assert all(denials(log) <= OPTIONAL_IN_ONE_NAMESPACE for log in logs)


def test_one_replica_release_scaled_with_kubectl_elects_exactly_one_leader(
    helm: Helm,
    controlplane: Any,
    kubelet: Any,
    k8s_client: Any,
    namespace: str,
    operator_namespace: str,
    api: KubeApi,
    tmp_path: Path,
) -> None:
    """`kubectl scale deploy --replicas=2` on a 1-replica release: the chart never sees it,
    so both pods run the chart's 1-replica environment. They still elect one leader, and
    only it works (before, both ran unelected and both reconciled)."""
    values = {"watchNamespaces": [namespace]}  # replicaCount: the default, 1
    with chart_rbac(helm, controlplane, operator_namespace, values) as installed:
        deployment = next(o for o in installed.objects if o["kind"] == "Deployment")
        assert deployment["spec"]["replicas"] == 1
        replicas = ChartReplicas(controlplane, k8s_client, installed, namespace, tmp_path, 2)
        operators = replicas.operators
        batches = Batches(api, namespace)
        try:
            replicas.start()
            replicas.start()  # what kubectl scale adds: a second pod of the same template
            lead, standby, identity = replicas.elected()

            # Only the leader runs a batch; the standby stays a standby.
            out = tmp_path / "out"
            batches.create(manifest(SMALL, "scaled", env={"RESUMABLE_OUTPUT_DIR": str(out)}))
            _check_scenario(batches, SMALL, "scaled", out)
            assert f"{namespace}/scaled " in operators[lead].log()
            assert f"{namespace}/scaled " not in operators[standby].log()
            assert "leading: " not in operators[standby].log()
            assert replicas.holder() == identity
        finally:
            logs = replicas.stop_all()
    assert all("lost lease" not in log for log in logs)
    assert all(denials(log) <= OPTIONAL_IN_ONE_NAMESPACE for log in logs)
