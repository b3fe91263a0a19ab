"""Test helpers: a real Kubernetes control plane, a process kubelet, pytest fixtures.

- controlplane.py: etcd + kube-apiserver on loopback (binaries: tests/controlplane/build.sh)
- kubelet.py: runs pods as local processes, as their service accounts
- plugin.py: the pytest fixtures and hooks (load with ``from tests.kube.plugin import *``)
- pki.py: throwaway certificates and keys
"""

from .controlplane import ControlPlane, ControlPlaneError, find_binaries
from .kubelet import ProcessKubelet

__all__ = ["ControlPlane", "ControlPlaneError", "ProcessKubelet", "find_binaries"]
