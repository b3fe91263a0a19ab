"""Every tier: the tier marker from the test's folder, and the admin's API client.

Loaded for every test. The control-plane fixtures (controlplane, kubeconfig,
k8s_client, kubectl, kubelet, namespace) come from tests/kube/plugin.py, loaded
by pyproject's addopts; each tier's conftest.py adds what only that tier uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resumable.kubeapi import KubeApi
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
