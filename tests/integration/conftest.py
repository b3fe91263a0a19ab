"""Integration tier: a real kube-apiserver + etcd started by the test suite.

The fixtures (controlplane, kubeconfig, k8s_client, kubectl, kubelet, namespace)
come from tests/kube/plugin.py, loaded for every tier by pyproject's addopts.
"""
