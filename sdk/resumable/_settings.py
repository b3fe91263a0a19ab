"""Worker settings, read from ``RESUMABLE_*`` environment variables.

The operator and the local runner inject these into every worker; a developer
running a worker by hand sets none and gets a local store under ``.resumable/``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from resumable import constants as names
from resumable.errors import ConfigError
from resumable.v1alpha1 import CheckpointPolicy, OutputsSpec

ENV_PREFIX = names.ENV_PREFIX


def _int(env: Mapping[str, str], var: str) -> int | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"{var}={raw!r} must not be negative")
    return value


def _positive(env: Mapping[str, str], var: str) -> int | None:
    value = _int(env, var)
    if value == 0:
        raise ConfigError(f"{var}=0 must be at least 1")
    return value


def _flag(env: Mapping[str, str], var: str) -> bool:
    raw = env.get(var, "").strip()
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r} is not a boolean (use 1 or 0)")


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to find and own its checkpoint."""

    batch_name: str = "default"
    namespace: str | None = None
    store: Literal["local", "kube"] = "local"
    directory: Path = Path(".resumable/default")
    output_dir: Path | None = None
    start_index: int | None = None
    attempt: int | None = None
    total_items: int | None = None
    run_id: str = ""
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    policy: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    allow_changed_items: bool = False
    careful: bool = False
    handle_signals: bool = True
    #: A parallel worker's slot (spec.parallelism > 1); None for the one worker.
    slot: int | None = None
    parallelism: int = 1
    chunk_size: int | None = None
    #: spec.outputs when it names a bucket or the status (RESUMABLE_OUTPUTS); None: a directory.
    outputs: OutputsSpec | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a bad value is a ConfigError naming the variable."""
        env = os.environ if env is None else env
        name = env.get(names.ENV_BATCH_NAME, "").strip() or "default"
        namespace = env.get(names.ENV_NAMESPACE, "").strip() or None
        store = env.get(names.ENV_STORE, "").strip().lower()
        if store not in ("", "local", "kube"):
            raise ConfigError(f"{names.ENV_STORE}={store!r} must be 'local' or 'kube'")
        if not store:
            in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST") or env.get("KUBECONFIG"))
            store = "kube" if in_cluster and namespace and name != "default" else "local"
        directory = Path(env.get(names.ENV_DIR, "").strip() or f".resumable/{name}")
        output_raw = env.get(names.ENV_OUTPUT_DIR, "").strip()
        policy = CheckpointPolicy()
        policy_raw = env.get(names.ENV_CHECKPOINT, "").strip()
        if policy_raw:
            try:
                policy = CheckpointPolicy.model_validate(json.loads(policy_raw))
            except (ValueError, ValidationError) as exc:
                raise ConfigError(f"{names.ENV_CHECKPOINT} is not a valid policy: {exc}") from None
        outputs = None
        outputs_raw = env.get(names.ENV_OUTPUTS, "").strip()
        if outputs_raw:
            try:
                outputs = OutputsSpec.model_validate(json.loads(outputs_raw))
            except (ValueError, ValidationError) as exc:
                raise ConfigError(
                    f"{names.ENV_OUTPUTS} is not a valid spec.outputs: {exc}"
                ) from None
        return cls(
            outputs=outputs if outputs is not None and outputs.directory is None else None,
            batch_name=name,
            namespace=namespace,
            store="kube" if store == "kube" else "local",
            directory=directory,
            output_dir=Path(output_raw) if output_raw else None,
            start_index=_int(env, names.ENV_START_INDEX),
            attempt=_int(env, names.ENV_ATTEMPT),
            total_items=_int(env, names.ENV_TOTAL_ITEMS),
            run_id=env.get(names.ENV_RUN_ID, "").strip(),
            worker_id=env.get(names.ENV_WORKER_ID, "").strip()
            or f"{socket.gethostname()}-{os.getpid()}",
            policy=policy,
            allow_changed_items=_flag(env, names.ENV_ALLOW_CHANGED_ITEMS),
            careful=_flag(env, names.ENV_CAREFUL),
            slot=_int(env, names.ENV_WORKER_SLOT),
            parallelism=_positive(env, names.ENV_PARALLELISM) or 1,
            chunk_size=_positive(env, names.ENV_CHUNK_SIZE),
        )
