"""Shapes the fault tests answer with, as kube-apiserver would."""

from __future__ import annotations

from typing import Any


def k8s_status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    """A metav1.Status body, as kube-apiserver sends with errors."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message or reason,
    }
