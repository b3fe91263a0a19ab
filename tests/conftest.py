"""Every tier: the tier marker from the test's folder, and the admin's API client.

Loaded for every test; ``moto`` (moto's S3-compatible server, tests/s3server.py,
started once per session on a free loopback port: a test that cannot start it
fails, loudly) and ``bucket`` (a fresh bucket on it, by name) serve the tests of
outputs in a bucket, in any tier. The control-plane fixtures (controlplane, kubeconfig,
k8s_client, kubectl, kubelet, namespace) come from tests/kube/plugin.py, loaded
by pyproject's addopts; each tier's conftest.py adds what only that tier uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resumable.kubeapi import KubeApi
from tests.s3server import MotoServer, start_moto
from tests.tiers import tier_of


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier (tests/tiers.py); files set none themselves."""
    for item in items:
        tier = tier_of(Path(item.path))
        if tier is not None:
            item.add_marker(tier)


@pytest.fixture
def api(kubeconfig: Path) -> KubeApi:
    """The admin's KubeApi on the test control plane (tests/kube/plugin.py)."""
    return KubeApi.from_environment(kubeconfig=str(kubeconfig))


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto()  # raises, with moto's output, when it cannot start
    yield server
    server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.create_bucket()
