"""Integration tier: a real kube-apiserver + etcd started by the test suite.

The fixtures (controlplane, kubeconfig, k8s_client, kubectl, kubelet, namespace)
come from tests/kube/plugin.py, loaded for every tier by pyproject's addopts, and
``api`` from tests/conftest.py; this file adds the batch helpers the operator and
CLI tests share.
"""

from __future__ import annotations

import pytest

from resumable.kubeapi import KubeApi
from tests.integration.harness import Batches


@pytest.fixture
def batches(api: KubeApi, namespace: str) -> Batches:
    """ResumableBatch helpers in the test's namespace."""
    return Batches(api, namespace)
