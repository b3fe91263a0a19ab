"""Fixtures of the harness's own tests (test_*.py here): the admin's typed APIs.

The control plane, kubelet and namespace fixtures come from plugin.py, loaded for
every tier by pyproject's addopts.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client


@pytest.fixture
def core(k8s_client: Any) -> Any:
    """CoreV1Api as the admin."""
    return client.CoreV1Api(k8s_client)


@pytest.fixture
def custom(k8s_client: Any) -> Any:
    """CustomObjectsApi as the admin."""
    return client.CustomObjectsApi(k8s_client)
