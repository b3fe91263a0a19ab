"""resumable.kubeapi names each failure of the real API server by its class.

Callers (the SDK's store, the operator, the CLI) catch ``NotFoundError`` or
``ConflictError`` rather than testing ``status == 404``: these pin that each
answer the real kube-apiserver gives arrives as the class that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import (
    JSON_PATCH,
    ApiError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    KubeApi,
    NotFoundError,
    UnauthorizedError,
    UnreachableError,
    batch_path,
)
from tests.kube.controlplane import free_port


def batch(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}},
    }


def test_each_refusal_of_the_real_server_is_raised_as_the_class_that_names_it(
    api: KubeApi, namespace: str, controlplane: Any, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError) as missing:
        api.request("GET", batch_path(namespace, "absent"))
    assert missing.value.status == 404
    assert "absent" in missing.value.message

    api.request("POST", batch_path(namespace), body=batch("once"))
    with pytest.raises(ConflictError) as twice:
        api.request("POST", batch_path(namespace), body=batch("once"))
    assert twice.value.status == 409

    fenced = [{"op": "test", "path": "/spec/suspend", "value": True}]
    with pytest.raises(InvalidError) as failed_test:
        api.request("PATCH", batch_path(namespace, "once"), body=fenced, content_type=JSON_PATCH)
    assert failed_test.value.status == 422

    with pytest.raises(BadRequestError) as bad:
        api.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": "a=" + "x" * 64}
        )
    assert bad.value.status == 400
    assert not isinstance(bad.value, InvalidError)  # not read as a failed test op (422)

    controlplane.ensure_service_account(namespace, "nobody")
    token = api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/nobody/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    nobody = KubeApi.from_environment(
        kubeconfig=str(controlplane.token_kubeconfig(tmp_path / "n.kubeconfig", token))
    )
    with pytest.raises(ForbiddenError) as forbidden:
        nobody.request("GET", batch_path(namespace, "once"))
    assert forbidden.value.status == 403
    assert not forbidden.value.retryable

    stranger = KubeApi.from_environment(
        kubeconfig=str(controlplane.token_kubeconfig(tmp_path / "s.kubeconfig", "not-a-token"))
    )
    with pytest.raises(UnauthorizedError):
        stranger.request("GET", batch_path(namespace, "once"))


def test_no_answer_is_unreachable_and_retryable(controlplane: Any, tmp_path: Path) -> None:
    config = controlplane.token_kubeconfig(tmp_path / "x.kubeconfig", "t")
    text = config.read_text().replace(controlplane.server, f"https://127.0.0.1:{free_port()}")
    config.write_text(text)
    closed = KubeApi.from_environment(kubeconfig=str(config))
    with pytest.raises(UnreachableError) as exc:
        closed.request("GET", "/version", timeout=2)
    assert exc.value.status == 0
    assert exc.value.retryable
    assert isinstance(exc.value, ApiError)
