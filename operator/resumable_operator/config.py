"""Operator settings, all from ``RESUMABLE_OPERATOR_*`` environment variables.

One place for every knob, read once at start by :mod:`resumable_operator.main`
and the kopf startup handler; a bad value is an error naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "RESUMABLE_OPERATOR_"
#: kopf's progress-storage and diff-base annotations live under this prefix.
ANNOTATION_PREFIX = "resumable.dev"
FINALIZER = "resumable.dev/finalizer"


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
    peering: str = "resumable-batch"
    standalone: bool = True
    liveness: str = "http://0.0.0.0:8081/healthz"

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
        standalone_raw = get("STANDALONE", "true").lower()
        if standalone_raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise SettingsError(f"{PREFIX}STANDALONE={standalone_raw!r}: use true or false")
        standalone = standalone_raw in ("1", "true", "yes", "on")
        return cls(
            namespaces=namespaces,
            metrics_port=integer("METRICS_PORT", 8080, 0, 65535),
            log_level=level,
            log_format=fmt,
            workers=integer("WORKERS", 4, 1, 64),
            peering=get("PEERING", "resumable-batch"),
            standalone=standalone,
            liveness=get("LIVENESS", "http://0.0.0.0:8081/healthz"),
        )
