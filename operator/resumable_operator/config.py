"""Operator settings, all from ``RESUMABLE_OPERATOR_*`` environment variables.

One place for every knob, read once at start by :mod:`resumable_operator.main`
and the kopf startup handler; a bad value is an error naming the variable.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "RESUMABLE_OPERATOR_"
#: kopf's progress-storage and diff-base annotations live under this prefix.
ANNOTATION_PREFIX = "resumable.dev"
FINALIZER = "resumable.dev/finalizer"
#: Where a pod finds its own namespace (the service account's mount).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: Settings that existed before leader election replaced kopf peering.
_REMOVED = ("STANDALONE", "PEERING")


def _own_namespace(env: Mapping[str, str]) -> str:
    """This pod's namespace: POD_NAMESPACE, else the service account's, else default."""
    if env.get("POD_NAMESPACE", "").strip():
        return env["POD_NAMESPACE"].strip()
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _identity(env: Mapping[str, str]) -> str:
    """This replica's name in the Lease: the pod's name (or host's), and a random part."""
    base = env.get("POD_NAME", "").strip() or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


class SettingsError(ValueError):
    """An environment variable has a bad value."""


@dataclass(frozen=True)
class OperatorConfig:
    """What the operator watches and how it reports."""

    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    log_level: str = "INFO"
    log_format: str = "text"
    workers: int = 4
    liveness: str = "http://0.0.0.0:8081/healthz"
    leader_election: bool = False
    lease_name: str = "resumable-batch"
    lease_namespace: str = "default"
    lease_seconds: int = 15
    #: Batches labelled kueue.x-k8s.io/queue-name are admitted through Kueue Workloads
    #: (needs Workload rights: the chart's kueue.enabled).
    kueue: bool = False
    identity: str = field(default_factory=lambda: _identity({}))

    @property
    def clusterwide(self) -> bool:
        """True when no namespaces are listed: watch them all."""
        return not self.namespaces

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read the settings from the environment."""
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(PREFIX + name, "").strip() or default

        def integer(name: str, default: int, lo: int, hi: int) -> int:
            raw = get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{PREFIX}{name}={raw!r} is not an integer") from None
            if not lo <= value <= hi:
                raise SettingsError(f"{PREFIX}{name}={value} is outside {lo}..{hi}")
            return value

        level = get("LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"{PREFIX}LOG_LEVEL={level!r}: use DEBUG, INFO, WARNING or ERROR")
        fmt = get("LOG_FORMAT", "text").lower()
        if fmt not in ("text", "json"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT={fmt!r}: use text or json")
        namespaces = tuple(n.strip() for n in get("NAMESPACES", "").split(",") if n.strip())
        for gone in _REMOVED:
            if env.get(PREFIX + gone, "").strip():
                raise SettingsError(
                    f"{PREFIX}{gone} is no longer read: kopf peering gave way to leader "
                    f"election; set {PREFIX}LEADER_ELECTION=true to run more than one replica"
                )
        election_raw = get("LEADER_ELECTION", "false").lower()
        if election_raw not in _TRUE + _FALSE:
            raise SettingsError(f"{PREFIX}LEADER_ELECTION={election_raw!r}: use true or false")
        kueue_raw = get("KUEUE", "false").lower()
        if kueue_raw not in _TRUE + _FALSE:
            raise SettingsError(f"{PREFIX}KUEUE={kueue_raw!r}: use true or false")
        return cls(
            namespaces=namespaces,
            metrics_port=integer("METRICS_PORT", 8080, 0, 65535),
            log_level=level,
            log_format=fmt,
            workers=integer("WORKERS", 4, 1, 64),
            liveness=get("LIVENESS", "http://0.0.0.0:8081/healthz"),
            leader_election=election_raw in _TRUE,
            lease_name=get("LEASE_NAME", "resumable-batch"),
            lease_namespace=get("LEASE_NAMESPACE", "") or _own_namespace(env),
            lease_seconds=integer("LEASE_SECONDS", 15, 3, 300),
            kueue=kueue_raw in _TRUE,
            identity=_identity(env),
        )


def kueue_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when RESUMABLE_OPERATOR_KUEUE is on: the handlers then watch Workloads
    (read at import, so that ``kopf run -m resumable_operator.handlers`` agrees)."""
    env = os.environ if env is None else env
    return env.get(PREFIX + "KUEUE", "").strip().lower() in _TRUE
