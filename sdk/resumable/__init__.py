"""resumable: checkpoint a batch loop so a restarted worker picks up where it stopped.

    import resumable

    run = resumable.start()                  # settings from RESUMABLE_* env vars
    for item in run.items(documents):        # only what is not done yet
        with item:                           # commits only if the block succeeds
            item.output = summarize(item.value)
            item.add_usage(tokens=1200, cost_usd=0.004)

Outside a cluster the checkpoint lives in ``.resumable/<name>/``; in a pod started
by the operator it lives in the ResumableBatch's status. This module only
re-exports; the machinery is in the private modules beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from resumable._run import Item, Run, Summary, Terminated, exit_on_usage_errors, fingerprint
from resumable._settings import Settings
from resumable._store import (
    CheckpointStore,
    DirectoryOutputs,
    LocalStore,
    OutputStore,
    atomic_write,
)
from resumable.errors import (
    ConfigError,
    CorruptCheckpointError,
    FencedError,
    FingerprintMismatchError,
    ResumableError,
    StoreRefusedError,
    StoreUnavailableError,
    UsageError,
)
from resumable.ranges import IndexSet
from resumable.v1alpha1 import CheckpointPolicy

__all__ = [
    "CheckpointPolicy",
    "CheckpointStore",
    "ConfigError",
    "CorruptCheckpointError",
    "DirectoryOutputs",
    "FencedError",
    "FingerprintMismatchError",
    "IndexSet",
    "Item",
    "LocalStore",
    "OutputStore",
    "ResumableError",
    "Run",
    "Settings",
    "StoreRefusedError",
    "StoreUnavailableError",
    "Summary",
    "Terminated",
    "UsageError",
    "atomic_write",
    "fingerprint",
    "start",
]


def start(
    name: str | None = None,
    *,
    directory: str | Path | None = None,
    policy: CheckpointPolicy | None = None,
    settings: Settings | None = None,
) -> Run:
    """Open the batch's checkpoint and return the :class:`Run` for this attempt.

    Settings come from ``RESUMABLE_*`` environment variables; the arguments
    override them. Raises FencedError if a newer attempt already owns the batch.

    From here on a :class:`UsageError` nobody catches ends the process with exit
    code ``resumable.constants.EXIT_USAGE`` (its cause saved in the checkpoint),
    which the operator and ``resumable run`` do not retry.
    """
    import dataclasses

    exit_on_usage_errors()
    base = settings or Settings.from_env()
    changes: dict[str, object] = {}
    if name is not None:
        changes["batch_name"] = name
        if directory is None and settings is None and not os.environ.get("RESUMABLE_DIR"):
            # Under `resumable run` RESUMABLE_DIR names the store the runner reads.
            changes["directory"] = Path(".resumable") / name
    if directory is not None:
        changes["directory"] = Path(directory)
    if policy is not None:
        changes["policy"] = policy
    resolved = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    if resolved.store == "kube":
        try:
            from resumable._kube import open_kube_store
        except ModuleNotFoundError as exc:
            if exc.name != "kubernetes":
                raise
            raise ConfigError(
                "RESUMABLE_STORE=kube needs the Kubernetes client: "
                "pip install 'resumable-batch[kube]'"
            ) from exc

        checkpoints, outputs, steps = open_kube_store(resolved)
        store: CheckpointStore = checkpoints
        if resolved.slot is not None:
            from resumable._slots import KubeSlots

            store = _slot_store(resolved, KubeSlots(checkpoints))
        if resolved.outputs is not None:
            outputs, steps = _chosen_outputs(resolved, store, steps)
        return Run(resolved, store, outputs, steps)
    local = LocalStore(resolved.directory)
    store = local
    if resolved.slot is not None:
        from resumable._slots import LocalSlots

        store = _slot_store(resolved, LocalSlots(local))
    outputs, steps = local.outputs, local.steps
    if resolved.output_dir:
        outputs = DirectoryOutputs(resolved.output_dir / "outputs")
        steps = DirectoryOutputs(resolved.output_dir / "steps")
    if resolved.outputs is not None:
        outputs, steps = _chosen_outputs(resolved, store, steps)
    return Run(resolved, store, outputs, steps)


def _chosen_outputs(
    settings: Settings, checkpoints: CheckpointStore, steps: OutputStore
) -> tuple[OutputStore, OutputStore]:
    """The output and step stores spec.outputs names (RESUMABLE_OUTPUTS) when not a directory.

    A bucket keeps both under the batch's uid and runId; the status keeps tiny
    outputs, and step results stay in the directory they would use anyway.
    """
    spec = settings.outputs
    assert spec is not None
    if spec.s3 is None:
        from resumable._inline import InlineOutputs

        return InlineOutputs(max_bytes=spec.status.max_bytes if spec.status else 0), steps
    try:
        from resumable import _s3
    except ModuleNotFoundError as exc:
        if exc.name != "obstore":
            raise
        raise ConfigError(
            "spec.outputs.s3 needs the S3 client: pip install 'resumable-batch[s3]'"
        ) from exc
    s3 = spec.s3
    bucket = _s3.open_bucket(s3)
    incarnation = getattr(checkpoints, "incarnation", lambda: "")

    def root() -> str:
        return _s3.batch_root(
            s3,
            namespace=settings.namespace or "default",
            name=settings.batch_name,
            uid=str(incarnation()),
            run_id=settings.run_id,
        )

    where = f"s3://{s3.bucket}"
    return (
        _s3.S3Outputs(bucket, root, "outputs", describe=f"{where} (outputs)"),
        _s3.S3Outputs(bucket, root, "steps", describe=f"{where} (steps)", first_wins=True),
    )


def _slot_store(settings: Settings, backend: Any) -> CheckpointStore:
    """A parallel worker's store: its slot of the batch (see resumable._slots)."""
    from resumable._slots import SlotStore

    return SlotStore(
        backend,
        slot=settings.slot or 0,
        parallelism=settings.parallelism,
        chunk_size=settings.chunk_size,
    )
