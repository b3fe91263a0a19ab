"""A batch whose name is no label value (over 63 characters) fails once; it does not loop.

Such names are valid object names, but the operator selects and labels the
batch's pods and worker objects with it, so the API server refuses the pod list
(400) and every object carrying the label (422). New batches like that are
refused at admission; one created before that rule must still end, not log an
exception every 5 s forever. The API is a small in-memory stand-in answering as
the real server does for exactly these calls.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from resumable.kubeapi import KubeApi, api_error
from resumable_core.jsonpatch import apply_patch
from resumable_operator.controller import Controller

NAME = "x" * 64
TOO_LONG = f'Invalid value: "{NAME}": must be no more than 63 characters'


class LongNameApi:
    """Answers the operator's calls for one batch named NAME in namespace ns."""

    def __init__(self) -> None:
        self.batch: dict[str, Any] = {
            "apiVersion": "resumable.dev/v1alpha1",
            "kind": "ResumableBatch",
            "metadata": {"name": NAME, "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {
                "totalItems": 3,
                "template": {"spec": {"containers": [{"name": "worker", "image": "w"}]}},
            },
        }
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append((method, path))
        body = kw.get("body")
        if method == "GET" and path == "/api/v1/namespaces/ns/pods":
            raise api_error(
                400, f"unable to parse requirement: {TOO_LONG.replace('characters', 'bytes')}"
            )
        if method == "GET" and path.endswith(f"/resumablebatches/{NAME}"):
            return copy.deepcopy(self.batch)
        if method == "PATCH" and path.endswith(f"/resumablebatches/{NAME}/status"):
            self.batch = apply_patch(self.batch, body)
            return copy.deepcopy(self.batch)
        if method == "GET" and f"/{NAME}-worker" in path:
            raise api_error(404, "not found")
        if method == "POST" and path.endswith(("/serviceaccounts", "/roles", "/rolebindings")):
            raise api_error(422, f"{body['kind']} is invalid: metadata.labels: {TOO_LONG}")
        if method == "POST" and path.endswith("/pods"):
            raise api_error(422, f"Pod is invalid: metadata.labels: {TOO_LONG}")
        if method == "POST" and path.endswith("/events"):
            self.events.append(body)
            return body
        raise AssertionError(f"unexpected call {method} {path}")


def test_batch_named_over_63_characters_fails_with_the_servers_reason_instead_of_looping() -> None:
    api = LongNameApi()
    ctl = Controller(cast(KubeApi, api), workers=1)
    for _ in range(3):
        ctl.reconcile("ns", NAME)
    status = api.batch["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "PodCreateFailed")
    assert "must be no more than 63 characters" in failed["message"]
    assert status["phase"] == "Failed"
    assert status["checkpoint"]["attempt"] == 1
    assert status.get("activePod", "") == ""
    reasons = [e["reason"] for e in api.events]
    assert reasons.count("PodCreateFailed") == 1
    assert "Accepted" in reasons
    assert ("POST", "/api/v1/namespaces/ns/pods") not in api.calls  # refused before the pod
