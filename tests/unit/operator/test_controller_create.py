"""The controller around a pod the API server refuses for now, then accepts.

Only decide() changes the status; the controller executes and reports back how
the create went. Here an in-memory API refuses the pod twice (403, as for a
missing service account) and then creates it; the pod control's clock is
stepped instead of waited for. The same sequence runs against the real server
in tests/integration/test_controller.py.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from resumable.kubeapi import KubeApi, api_error
from resumable_core.jsonpatch import apply_patch
from resumable_operator.controller import Controller

BATCH = "/apis/resumable.dev/v1alpha1/namespaces/ns/resumablebatches/b"


class RefusingApi:
    """One batch; the pod POST is refused ``refusals`` times, then accepted."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.batch: dict[str, Any] = {
            "apiVersion": "resumable.dev/v1alpha1",
            "kind": "ResumableBatch",
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "totalItems": 10,
                "template": {
                    "spec": {
                        "serviceAccountName": "not-yet",
                        "containers": [{"name": "w", "image": "w", "command": ["work"]}],
                    }
                },
            },
        }
        self.pods: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.status_patches = 0

    def request(self, method: str, path: str, **kw: Any) -> Any:
        body = kw.get("body")
        if (method, path) == ("GET", "/api/v1/namespaces/ns/pods"):
            return {"items": copy.deepcopy(self.pods)}
        if (method, path) == ("GET", BATCH):
            return copy.deepcopy(self.batch)
        if (method, path) == ("PATCH", f"{BATCH}/status"):
            self.status_patches += 1
            self.batch = apply_patch(self.batch, body)
            return copy.deepcopy(self.batch)
        if (method, path) == ("POST", "/api/v1/namespaces/ns/pods"):
            if self.refusals:
                self.refusals -= 1
                raise api_error(403, 'pods "b-1" is forbidden: serviceaccount "not-yet" not found')
            self.pods.append(body)
            return body
        if (method, path) == ("POST", "/api/v1/namespaces/ns/events"):
            self.events.append(body["reason"])
            return body
        if (method, path) == (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/b-worker",
        ):
            raise api_error(404, 'roles "b-worker" not found')  # the template names its own
        raise AssertionError(f"unexpected call {method} {path}")

    def progressing(self) -> tuple[str, str]:
        found = next(c for c in self.batch["status"]["conditions"] if c["type"] == "Progressing")
        return found["reason"], found["message"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pod_refused_for_now_waits_pending_and_its_start_is_announced_once_created() -> None:
    api = RefusingApi(refusals=2)
    ctl = Controller(cast(KubeApi, api), workers=1)
    ctl.pods.clock = clock = Clock()

    delays = []
    for _ in range(2):
        delay = ctl.reconcile("ns", "b")
        assert delay is not None
        delays.append(delay)
        assert api.batch["status"]["phase"] == "Pending"
        reason, message = api.progressing()
        assert reason == "PodCreateRetrying"
        assert 'serviceaccount "not-yet" not found' in message
        assert ctl.reconcile("ns", "b") == pytest.approx(delay)  # not due: no try
        clock.now += delay
    assert delays == [1.0, 2.0]
    assert api.status_patches == 2  # the attempt, then the refusal; the same refusal again: none
    assert api.events == ["Accepted", "PodCreateFailed", "PodCreateFailed"]

    ctl.reconcile("ns", "b")
    assert [p["metadata"]["name"] for p in api.pods] == ["b-1"]
    status = api.batch["status"]
    assert (status["phase"], status["checkpoint"]["attempt"]) == ("Running", 1)
    assert api.progressing() == ("PodCreated", "Attempt 1 started at item 1/10.")
    assert api.events[3:] == ["Started"]
    assert (status.get("restarts", 0), status.get("disruptions", 0)) == (0, 0)
