"""Every tier: the admin's API client on the test control plane.

Loaded for every test. The control-plane fixtures (controlplane, kubeconfig,
k8s_client, kubectl, kubelet, namespace) come from tests/kube/plugin.py, loaded
by pyproject's addopts; each tier's conftest.py adds what only that tier uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resumable._kubeapi import KubeApi


@pytest.fixture
def api(kubeconfig: Path) -> KubeApi:
    """The admin's KubeApi on the test control plane (tests/kube/plugin.py)."""
    return KubeApi.from_environment(kubeconfig=str(kubeconfig))
