"""Reliability tier: faults on demand, on kmock and on the real control plane.

On kmock: 500s, 429s with Retry-After, slow answers (client timeouts) and dropped
watch streams. On the real control plane (tests/kube): the guarantees of the
reliability report (report.py, docs/reliability.md) under kills, outages, zombies
and bad input.

Fixtures (besides kmock's own ``kmock``: a fresh KubernetesEmulator on a local
HTTP port per test, from the kmock pytest plugin):

- ``kmock_url``: the mock server's base URL (str).
- ``kmock_kubeconfig``: a kubeconfig file pointing at it (plain HTTP, no auth).
- ``kmock_env``: sets KUBECONFIG to that file for the test (for code that loads
  its config itself, like the SDK and kopf); returns the path.
- ``kmock_client``: a kubernetes.client.ApiClient for the mock (closed after the test).
- ``kmock_api``: a :class:`resumable.kubeapi.KubeApi` on the mock whose requests time
  out after 0.5 s, so a slow answer is a timeout at once (closed after the test).
- ``rb_resource``: registers the ResumableBatch resource (resumable.dev/v1alpha1,
  resumablebatches, namespaced, with the status subresource) in the mock's
  discovery; returns its kmock.resource for criteria.
- ``moto`` and ``bucket`` (from tests/conftest.py): moto's S3 server and a fresh bucket.
- ``workers``: a list a test appends the worker processes it starts to
  (:class:`tests.workers.WorkerProcess`); any still running at its end is killed.
- ``figure``: ``figure(key, line, **numbers)`` records the test's one-line figure
  for the report (report.py); the lines are listed at the end of the run.
- ``batches``: :class:`tests.integration.harness.Batches` in the test's namespace.
- ``operator``: the operator as a process watching the test's namespace, with the
  process kubelet running its pods (its log's tail is printed at teardown).

The kubernetes client is synchronous: call it with ``await asyncio.to_thread(...)``
so the mock server (on the test's event loop) can answer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import kmock as km  # noqa: E402

from resumable.kubeapi import KubeApi, load_api_client  # noqa: E402

# The operator's integration tests' fixture, shared: the operator process for a test.
from tests.integration.conftest import operator  # noqa: E402, F401
from tests.integration.harness import Batches  # noqa: E402
from tests.reliability import report  # noqa: E402
from tests.workers import WorkerProcess  # noqa: E402

GROUP, VERSION, PLURAL = "resumable.dev", "v1alpha1", "resumablebatches"


@pytest.fixture
def kmock_url(kmock: km.RawHandler) -> str:
    return str(kmock.url).rstrip("/")


@pytest.fixture
def kmock_kubeconfig(kmock_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "kmock.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": kmock_url}}],
                "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"},
                    }
                ],
                "current-context": "kmock",
            }
        )
    )
    return path


@pytest.fixture
def kmock_env(kmock_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", str(kmock_kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kmock_kubeconfig


@pytest.fixture
def kmock_client(kmock_kubeconfig: Path) -> Iterator[Any]:
    from tests.kube.controlplane import new_api_client

    api = new_api_client(kmock_kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def kmock_api(kmock_kubeconfig: Path) -> Iterator[KubeApi]:
    client = load_api_client(kubeconfig=str(kmock_kubeconfig))
    try:
        yield KubeApi(client, timeout=0.5)
    finally:
        client.close()


@pytest.fixture
def rb_resource(kmock: km.KubernetesScaffold) -> km.resource:
    resource = km.resource(GROUP, VERSION, PLURAL)
    kmock.resources[resource] = km.ResourceInfo(
        kind="ResumableBatch",
        singular="resumablebatch",
        shortnames={"rb"},
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )
    return resource


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.communicate()


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(key: str, line: str, **numbers: Any) -> None:
        report.record(key, request.node.nodeid, line, numbers)

    return record


@pytest.fixture
def batches(api: KubeApi, namespace: str) -> Batches:
    return Batches(api, namespace)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if report.SESSION:
        terminalreporter.section("reliability figures")
        for line in report.SESSION:
            terminalreporter.write_line(line)
