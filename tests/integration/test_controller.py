"""The operator's executor (controller.py) against the real control plane, driven in process.

Each test calls ``Controller.reconcile()``, the code the operator runs for every
batch, so the interleavings that matter (a worker finishing between two reads, a
worker writing while the operator accounts for its end, an API server refusing a
pod) happen at a chosen point instead of by luck. The API client can be wrapped
to act just before a given request, as a concurrent worker or the garbage
collector would.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import JSON_PATCH, KubeApi, batch_path, load_api_client
from resumable_operator.controller import Controller
from scenarios import Scenario
from tests.integration.harness import Batches
from tests.integration.test_operator import batch_manifest
from tests.waiting import wait_for

SHORT = Scenario(id="short", items=20, fault={}, retry={}, phase="Succeeded", restarts=0)
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"

Hook = Callable[[str, str, dict[str, Any]], None]


class HookedApi(KubeApi):
    """A KubeApi that calls ``hook(method, path, query)`` before each request it sends."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(load_api_client(kubeconfig=str(kubeconfig)))
        self.hook: Hook | None = None

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if self.hook is not None:
            self.hook(method, path, dict(kw.get("query") or {}))
        return super().request(method, path, **kw)


def idle_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """A batch whose worker never writes (it sleeps): the test plays the worker."""
    body: dict[str, Any] = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": 10,
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": [sys.executable, "-c", "import time; time.sleep(300)"],
                        }
                    ],
                }
            },
        },
    }
    body["spec"].update(spec)
    return body


def pod_names(batches: Batches, name: str, *, uid: str | None = None) -> list[str]:
    """Pods named after the batch (owned by ``uid`` when given), oldest attempt first."""
    items = batches.api.request("GET", f"/api/v1/namespaces/{batches.namespace}/pods")["items"]
    found = [
        p["metadata"]["name"]
        for p in items
        if p["metadata"]["name"].rsplit("-", 1)[0] == name
        and (uid is None or [o["uid"] for o in p["metadata"].get("ownerReferences", [])] == [uid])
    ]
    return sorted(found, key=lambda n: int(n.rsplit("-", 1)[1]))


def pod_phase(batches: Batches, batch: str, pod: str) -> str:
    for p in batches.pods(batch):
        if p["metadata"]["name"] == pod:
            return str(p.get("status", {}).get("phase", ""))
    return "gone"


def force_delete_pod(api: KubeApi, namespace: str, pod: str) -> None:
    api.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/pods/{pod}",
        body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )


def worker_write(api: KubeApi, namespace: str, name: str, checkpoint: dict[str, Any]) -> None:
    """A checkpoint write as the SDK's KubeStore sends it: fenced on attempt and position."""
    current = api.request("GET", batch_path(namespace, name))["status"]["checkpoint"]
    api.request(
        "PATCH",
        batch_path(namespace, name, status=True),
        body=[
            {"op": "test", "path": "/status/checkpoint/attempt", "value": current["attempt"]},
            {"op": "test", "path": "/status/checkpoint/nextIndex", "value": current["nextIndex"]},
            {"op": "replace", "path": "/status/checkpoint", "value": checkpoint},
            {"op": "add", "path": "/status/progress", "value": f"{checkpoint['itemsDone']}/10"},
        ],
        content_type=JSON_PATCH,
    )


def reasons(batches: Batches, name: str) -> list[str]:
    return [e["reason"] for e in batches.events(name)]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def rbac_paths(namespace: str, name: str) -> list[str]:
    rbac = RBAC.format(ns=namespace)
    return [
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}-worker",
        f"{rbac}/roles/{name}-worker",
        f"{rbac}/rolebindings/{name}-worker",
    ]


def owners(api: KubeApi, path: str) -> list[str]:
    meta = api.request("GET", path)["metadata"]
    return [o["uid"] for o in meta.get("ownerReferences", [])]


def test_a_stopped_controller_writes_nothing_from_a_reconcile_still_running(
    kubeconfig: Path, namespace: str, batches: Batches, tmp_path: Path
) -> None:
    # Leadership lost (or the operator stopping) while a reconcile runs in its
    # thread: what it decided is not written; the next leader decides again.
    api = HookedApi(kubeconfig)
    ctl = Controller(api, workers=1)
    batches.create(batch_manifest(SHORT, "late", tmp_path / "out"))

    def stop_after_reading(method: str, path: str, query: dict[str, Any]) -> None:
        if method == "GET" and path.endswith("/late"):
            asyncio.run(ctl.stop(wait=0))  # the lease is lost between read and write

    api.hook = stop_after_reading
    assert ctl.reconcile(namespace, "late") is None
    assert "status" not in batches.get("late")  # not even the first status
    assert batches.pods("late") == []


# ---- finding 1: the batch read must not be older than the pod list ------------------------


def test_worker_finishing_just_before_the_pod_list_is_a_success_not_a_rerun(
    kubeconfig: Path, namespace: str, batches: Batches, kubelet: Any, tmp_path: Path
) -> None:
    api = HookedApi(kubeconfig)
    ctl = Controller(api, workers=1)
    batches.create(batch_manifest(SHORT, "race", tmp_path / "out", delay=0.2))
    ctl.reconcile(namespace, "race")  # creates race-1
    kubelet.wait_running(namespace, "race-1")

    def finish_before_listing(method: str, path: str, query: dict[str, Any]) -> None:
        # The worker writes its finished checkpoint and exits just before the pod LIST.
        if method == "GET" and path.endswith("/pods") and "labelSelector" in query:
            wait_for(
                lambda: pod_phase(batches, "race", "race-1") == "Succeeded",
                what="race-1 to succeed",
            )

    api.hook = finish_before_listing
    ctl.reconcile(namespace, "race")
    api.hook = None
    time.sleep(2.5)  # past the default 2 s backoff a wrong "exit 0 with items left" would set
    for _ in range(2):
        ctl.reconcile(namespace, "race")
    status = batches.get("race")["status"]
    assert status["phase"] == "Succeeded", (status.get("lastFailure"), status["conditions"])
    assert status["restarts"] == 0
    assert pod_names(batches, "race") == ["race-1"]  # the batch did not run again from item 1


def test_worker_write_while_its_end_is_accounted_is_reread_not_overwritten(
    kubeconfig: Path, namespace: str, batches: Batches, tmp_path: Path
) -> None:
    # A pod removed from the API (force-deleted, or its node lost) may still have a
    # process that writes. Its last write must not be buried under the operator's
    # "attempt ended" patch computed from the checkpoint read before it.
    api = HookedApi(kubeconfig)
    ctl = Controller(api, workers=1)
    batches.create(idle_manifest("fence"))
    ctl.reconcile(namespace, "fence")  # attempt 1: pod fence-1
    saved = {"nextIndex": 4, "completed": "0-3", "attempt": 1, "itemsDone": 4,
             "context": {"attempt": 1}, "updatedAt": "2030-01-01T00:00:01Z"}  # fmt: skip
    worker_write(api, namespace, "fence", saved)
    force_delete_pod(api, namespace, "fence-1")
    finished = {"nextIndex": 0, "completed": "", "attempt": 1, "itemsDone": 10, "finished": True,
                "context": {"attempt": 1}, "updatedAt": "2030-01-01T00:00:02Z"}  # fmt: skip
    written: list[bool] = []

    def worker_finishes_first(method: str, path: str, query: dict[str, Any]) -> None:
        if method == "PATCH" and path.endswith("/status") and not written:
            written.append(True)
            worker_write(api, namespace, "fence", finished)

    api.hook = worker_finishes_first
    ctl.reconcile(namespace, "fence")
    api.hook = None
    assert written
    for _ in range(2):
        ctl.reconcile(namespace, "fence")
    status = batches.get("fence")["status"]
    assert status["phase"] == "Succeeded", (status.get("lastFailure"), status["conditions"])
    assert status["checkpoint"]["finished"] is True
    assert status["checkpoint"]["itemsDone"] == 10
    assert pod_names(batches, "fence") == []  # no attempt 2 over the finished checkpoint


# ---- finding 3: pods the API server refuses ---------------------------------------------


def invalid_label(body: dict[str, Any]) -> None:
    body["spec"]["template"]["metadata"] = {"labels": {"team": "not a label value"}}


def invalid_container_name(body: dict[str, Any]) -> None:
    body["spec"]["template"]["spec"]["containers"][0]["name"] = "Worker_1"


def misspelt_container_field(body: dict[str, Any]) -> None:
    worker = body["spec"]["template"]["spec"]["containers"][0]
    worker["comand"] = worker.pop("command")  # kept by the CRD, unknown to the Pod API


@pytest.mark.parametrize(
    ("name", "breaks", "says"),
    [
        ("badlabel", invalid_label, 'Invalid value: "not a label value"'),
        ("badcontainer", invalid_container_name, 'Invalid value: "Worker_1"'),
        ("typo", misspelt_container_field, 'unknown field "spec.containers[0].comand"'),
    ],
    ids=["label-value", "container-name", "misspelt-field"],
)
def test_pod_the_api_server_rejects_as_invalid_fails_the_batch_with_the_servers_message(
    kubeconfig: Path,
    namespace: str,
    batches: Batches,
    name: str,
    breaks: Callable[[dict[str, Any]], None],
    says: str,
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    body = idle_manifest(name)
    breaks(body)
    batches.create(body)
    for _ in range(4):  # later passes (resyncs, events) change nothing
        ctl.reconcile(namespace, name)
    status = batches.get(name)["status"]
    assert status["phase"] == "Failed"
    failed = condition(status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "PodCreateFailed")
    assert says in failed["message"]
    assert condition(status, "Succeeded")["status"] == "False"
    assert condition(status, "Progressing")["status"] == "False"
    assert says in condition(status, "Progressing")["message"]  # `kubectl get rb -o wide`
    assert status["checkpoint"]["attempt"] == 1
    assert status["disruptions"] == 0
    assert status.get("activePod", "") == ""
    assert status.get("completionTime")
    assert pod_names(batches, name) == []
    seen = reasons(batches, name)
    assert "Accepted" in seen  # the decision's own events are posted too
    assert seen.count("PodCreateFailed") == 1
    assert "Started" not in seen  # nothing started


def test_fixing_the_template_of_a_batch_failed_by_an_invalid_pod_starts_the_worker(
    kubeconfig: Path, namespace: str, batches: Batches
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    body = idle_manifest("fixme")
    body["spec"]["template"]["metadata"] = {"labels": {"team": "not a label value"}}
    batches.create(body)
    ctl.reconcile(namespace, "fixme")
    assert batches.get("fixme")["status"]["phase"] == "Failed"
    batches.patch_spec("fixme", {"template": {"metadata": {"labels": {"team": "docs"}}}})
    ctl.reconcile(namespace, "fixme")
    status = batches.get("fixme")["status"]
    assert status["phase"] == "Running", status["conditions"]
    assert condition(status, "Failed")["status"] == "False"
    assert status["activePod"] == "fixme-2"
    assert pod_names(batches, "fixme") == ["fixme-2"]
    assert status["disruptions"] == 0
    assert status["restarts"] == 0


def test_pod_create_forbidden_for_now_is_retried_for_the_same_attempt_with_growing_delays(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    # A missing service account is a 403 from admission, like an exhausted quota:
    # it can go away, so the batch waits; it neither fails nor burns attempts.
    hooked = HookedApi(kubeconfig)
    writes: list[str] = []
    hooked.hook = lambda method, path, query: (
        writes.append(path) if method == "PATCH" and path.endswith("/status") else None
    )
    ctl = Controller(hooked, workers=1)
    body = idle_manifest("waits")
    body["spec"]["template"]["spec"]["serviceAccountName"] = "not-yet"
    batches.create(body)
    delays, patches = [], []
    for _ in range(3):
        delay = ctl.reconcile(namespace, "waits")
        patches.append(len(writes))
        assert delay is not None
        delays.append(delay)
        # While the create is retried, status says so (not Running, not PodCreated).
        status = batches.get("waits")["status"]
        assert status["phase"] == "Pending"
        progressing = condition(status, "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("True", "PodCreateRetrying")
        assert (
            'Cannot create pod waits-1 yet: 403: pods "waits-1" is forbidden'
            in (progressing["message"])
        )
        assert 'serviceaccount "not-yet" not found' in progressing["message"]
        time.sleep(delay)
    assert delays[0] < delays[1] < delays[2] <= 300, delays
    # The attempt, then the refusal; later tries refused the same way write nothing.
    assert patches == [2, 2, 2], writes
    status = batches.get("waits")["status"]
    assert status["checkpoint"]["attempt"] == 1
    assert status["disruptions"] == 0
    assert status["restarts"] == 0
    assert pod_names(batches, "waits") == []
    seen = reasons(batches, "waits")
    assert seen.count("PodCreateFailed") == 3
    assert "Disrupted" not in seen
    assert "Started" not in seen
    api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "not-yet"}},
    )
    ctl.reconcile(namespace, "waits")
    status = batches.get("waits")["status"]
    assert pod_names(batches, "waits") == ["waits-1"]  # the same attempt, at last
    assert status["checkpoint"]["attempt"] == 1
    assert status["disruptions"] == 0
    assert reasons(batches, "waits").count("Started") == 1
    assert status["phase"] == "Running"
    progressing = condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True",
        "PodCreated",
        "Attempt 1 started at item 1/10.",
    )


# ---- finding 4: objects left by an earlier batch of the same name -------------------------


def test_recreated_batch_waits_for_the_old_worker_rbac_to_go_and_then_owns_its_own(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    first = batches.create(idle_manifest("again"))
    ctl.reconcile(namespace, "again")
    assert pod_names(batches, "again") == ["again-1"]
    # kubectl delete rb again && kubectl apply: the garbage collector removes the old
    # batch's pods and RBAC some time later (no GC runs here: the test plays it).
    api.request("DELETE", batch_path(namespace, "again"))
    force_delete_pod(api, namespace, "again-1")
    second = batches.create(idle_manifest("again"))
    old, new = first["metadata"]["uid"], second["metadata"]["uid"]
    delay = ctl.reconcile(namespace, "again")
    for path in rbac_paths(namespace, "again"):
        assert owners(api, path) == [old]  # not taken over: the GC is about to delete it
    assert pod_names(batches, "again") == []  # no worker that would lose its account
    for path in rbac_paths(namespace, "again"):
        api.request("DELETE", path)  # what the GC does: their owner is gone
    assert delay is not None
    assert delay < 5
    time.sleep(delay)
    ctl.reconcile(namespace, "again")
    for path in rbac_paths(namespace, "again"):
        assert owners(api, path) == [new]
    assert pod_names(batches, "again", uid=new) == ["again-1"]
    status = batches.get("again")["status"]
    assert status["checkpoint"]["attempt"] == 1
    assert status["disruptions"] == 0


def test_worker_rbac_deleted_mid_run_is_recreated_for_the_next_attempt(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)
    created = batches.create(idle_manifest("rbacgone"))
    ctl.reconcile(namespace, "rbacgone")
    for path in rbac_paths(namespace, "rbacgone"):
        api.request("DELETE", path)
    force_delete_pod(api, namespace, "rbacgone-1")  # e.g. its node went away
    ctl.reconcile(namespace, "rbacgone")
    for path in rbac_paths(namespace, "rbacgone"):
        assert owners(api, path) == [created["metadata"]["uid"]]
    assert pod_names(batches, "rbacgone") == ["rbacgone-2"]


def test_pod_name_held_by_an_earlier_batchs_pod_moves_on_without_a_disruption(
    kubeconfig: Path, namespace: str, batches: Batches, api: KubeApi
) -> None:
    ctl = Controller(KubeApi.from_environment(kubeconfig=str(kubeconfig)), workers=1)

    def manifest() -> dict[str, Any]:
        body = idle_manifest("taken")
        body["spec"]["template"]["spec"]["serviceAccountName"] = "default"
        return body

    batches.create(manifest())
    ctl.reconcile(namespace, "taken")
    # Deleted, and the garbage collector has not removed its pod yet (none runs here),
    # or the pod was orphaned: either way the name "taken-1" is not free.
    api.request("DELETE", batch_path(namespace, "taken"))
    second = batches.create(manifest())
    new = second["metadata"]["uid"]
    for _ in range(3):
        ctl.reconcile(namespace, "taken")
    assert pod_names(batches, "taken", uid=new) == ["taken-2"]
    assert "taken-1" in pod_names(batches, "taken")  # the old one, left alone
    status = batches.get("taken")["status"]
    assert status["activePod"] == "taken-2"
    assert status["disruptions"] == 0
    assert status["restarts"] == 0
    assert "Disrupted" not in reasons(batches, "taken")
