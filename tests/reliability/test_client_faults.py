"""How the official kubernetes client reacts to API faults (on kmock).

These pin down what the client does by itself (and what it leaves to us), so
the SDK's retry logic is written against facts: it does not retry 5xx or 429,
it exposes Retry-After, it retries read timeouts of GETs (urllib3's default
Retry) but not of PATCHes, and Watch.stream quietly re-watches from the last
resourceVersion when the server drops the stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kmock as km
import pytest
import urllib3
from kubernetes import client, watch

from tests.reliability.faults import k8s_status

# KubernetesScaffold: discovery only, no object store. (The default KubernetesEmulator
# applies writes to its store before the reactions run, so it answers 404 for
# objects it does not hold; seed kmock.objects[...] first when using it.)
pytestmark = [pytest.mark.asyncio, pytest.mark.kmock(cls=km.KubernetesScaffold)]

GROUP, VERSION, PLURAL = "resumable.dev", "v1alpha1", "resumablebatches"
STATUS_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/ns1/{PLURAL}/b1/status"
OBJECT_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/ns1/{PLURAL}/b1"


def patch_status(api: Any, timeout: float | None = None) -> Any:
    return client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, "ns1", PLURAL, "b1", {"status": {"restarts": 1}},
        _content_type="application/merge-patch+json",
        _preload_content=False,
        _request_timeout=timeout,
    )  # fmt: skip


def get_object(api: Any, timeout: float | None = None) -> Any:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, "ns1", PLURAL, "b1", _preload_content=False, _request_timeout=timeout
    )


async def test_500_raises_at_once_without_retries(kmock: km.RawHandler, kmock_client: Any) -> None:
    kmock["patch", STATUS_PATH] << 500 << k8s_status(500, "InternalError", "etcd timeout")
    with pytest.raises(client.ApiException) as exc:
        await asyncio.to_thread(patch_status, kmock_client)
    assert exc.value.status == 500
    assert len(kmock["patch", STATUS_PATH]) == 1  # the client did not retry


async def test_429_exposes_retry_after_and_is_not_retried(
    kmock: km.RawHandler, kmock_client: Any
) -> None:
    kmock["patch", STATUS_PATH] << 429 << {"Retry-After": "3"} << k8s_status(429, "TooManyRequests")
    with pytest.raises(client.ApiException) as exc:
        await asyncio.to_thread(patch_status, kmock_client)
    assert exc.value.status == 429
    assert exc.value.headers is not None
    assert exc.value.headers["Retry-After"] == "3"
    assert len(kmock["patch", STATUS_PATH]) == 1  # honouring Retry-After is the caller's job


async def test_transient_500_then_success_needs_a_caller_retry(
    kmock: km.RawHandler, kmock_client: Any
) -> None:
    kmock["patch", STATUS_PATH][:1] << 500 << k8s_status(500, "InternalError")
    kmock["patch", STATUS_PATH] << {"metadata": {"name": "b1"}, "status": {"restarts": 1}}
    with pytest.raises(client.ApiException):
        await asyncio.to_thread(patch_status, kmock_client)
    resp = await asyncio.to_thread(patch_status, kmock_client)
    assert resp.status == 200
    assert len(kmock["patch", STATUS_PATH]) == 2


async def test_patch_read_timeout_is_not_retried(kmock: km.RawHandler, kmock_client: Any) -> None:
    kmock["patch", STATUS_PATH] << (lambda: asyncio.sleep(2)) << {"status": {}}
    start = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        await asyncio.to_thread(patch_status, kmock_client, 0.3)
    assert time.monotonic() - start < 1.5
    assert len(kmock["patch", STATUS_PATH]) == 1  # PATCH is not idempotent for urllib3


async def test_get_read_timeout_is_retried_by_urllib3(
    kmock: km.RawHandler, kmock_client: Any
) -> None:
    kmock["get", OBJECT_PATH] << (lambda: asyncio.sleep(2)) << {"metadata": {"name": "b1"}}
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        await asyncio.to_thread(get_object, kmock_client, 0.2)
    # urllib3's default Retry(3): the first try plus three retries hit the server.
    assert len(kmock["get", OBJECT_PATH]) == 4


async def test_dropped_watch_stream_is_resumed_from_the_last_resource_version(
    kmock: km.KubernetesScaffold, kmock_client: Any, rb_resource: km.resource
) -> None:
    def event(kind: str, rv: str) -> dict[str, Any]:
        obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ResumableBatch",
               "metadata": {"name": "b1", "namespace": "ns1", "resourceVersion": rv}}  # fmt: skip
        return {"type": kind, "object": obj}

    # Each watch request gets one event, then the server drops the stream.
    kmock["watch", rb_resource][:1] << (event("ADDED", "11"),)
    kmock["watch", rb_resource][1:2] << (event("MODIFIED", "12"),)
    kmock["watch", rb_resource] << (lambda: asyncio.sleep(10), b"")

    def consume() -> list[tuple[str, str]]:
        api: Any = client.CustomObjectsApi(kmock_client)
        seen: list[tuple[str, str]] = []
        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        for ev in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, "ns1", PLURAL):
            seen.append((ev["type"], ev["object"]["metadata"]["resourceVersion"]))
            if len(seen) == 2:
                w.stop()
        return seen

    seen = await asyncio.wait_for(asyncio.to_thread(consume), timeout=10)
    assert seen == [("ADDED", "11"), ("MODIFIED", "12")]
    requests = list(kmock["watch", rb_resource])
    assert len(requests) == 2
    assert "resourceVersion" not in requests[0].params
    assert requests[1].params["resourceVersion"] == "11"  # resumed, not relisted
