"""Integration tier: a real kube-apiserver + etcd started by the test suite.

The fixtures (controlplane, kubeconfig, k8s_client, kubectl, kubelet, namespace)
come from tests/kube/plugin.py, loaded for every tier by pyproject's addopts, and
``api`` from tests/conftest.py; this file adds the batch helpers and the
operator process the operator, parallel-worker and CLI tests share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import KubeApi
from tests.integration.harness import Batches, OperatorProcess


@pytest.fixture
def batches(api: KubeApi, namespace: str) -> Batches:
    """ResumableBatch helpers in the test's namespace."""
    return Batches(api, namespace)


@pytest.fixture
def operator(
    kubeconfig: Path, namespace: str, kubelet: Any, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator as a subprocess watching the test's namespace; its log shown at the end."""
    op = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log").start()
    try:
        yield op
    finally:
        op.stop()
        print("---- operator log (tail) ----\n" + "\n".join(op.log().splitlines()[-60:]))
