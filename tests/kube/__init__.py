"""Test helpers: a real Kubernetes control plane, a process kubelet, pytest fixtures.

- controlplane.py: etcd + kube-apiserver on loopback (binaries: tests/controlplane/build.sh)
- kubelet.py: runs pods as local processes, as their service accounts
- plugin.py: the pytest fixtures and hooks (load with ``from tests.kube.plugin import *``)
- pki.py: throwaway certificates and keys
- test_controlplane.py, test_kubelet.py (fixtures in conftest.py): the harness's own
  tests, in the integration tier (tests/tiers.py)
"""

from .controlplane import ControlPlane, ControlPlaneError, find_binaries
from .kubelet import ProcessKubelet

__all__ = ["ControlPlane", "ControlPlaneError", "ProcessKubelet", "find_binaries"]
