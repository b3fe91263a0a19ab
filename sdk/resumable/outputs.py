"""Reading a batch's outputs back: only the items its status says are done, in item order.

An item's output is stored before the checkpoint that covers it, and a redo
writes the same key again, so a store may hold an object whose item the status
does not cover yet (written, then the worker died before its position was
saved). :func:`read_outputs` shows exactly the covered ones, each once, in item
order; a store keeps one complete value per key (an atomic rename, an atomic
PUT), so none is partial. Used by ``resumable outputs`` (the CLI) and by tests;
:func:`open_outputs` opens the store a batch's spec.outputs names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from resumable import claims
from resumable.v1alpha1 import OutputsSpec, ResumableBatchStatus

__all__ = ["is_visible", "open_outputs", "read_outputs"]


def is_visible(status: ResumableBatchStatus) -> Callable[[int], bool]:
    """Whether the status covers an item: completed (by any worker), or the batch finished.

    A finished checkpoint clears its ranges and keeps counts: then every item
    below its total is done except the skipped (poison) ones.
    """
    cp = status.checkpoint
    if cp.finished:
        total = cp.total_items if cp.total_items is not None else cp.items_done
        skipped = {s.index for s in status.skipped}
        return lambda index: 0 <= index < total and index not in skipped
    done = claims.done_items(status)
    return lambda index: index in done


def read_outputs(store: Any, status: ResumableBatchStatus) -> Iterator[tuple[int, Any]]:
    """(index, value) of every output the status covers, in item order, each once.

    ``store`` is an OutputStore (``keys()`` and ``get()``); values are as the SDK
    stored them: ``{"index": ..., "key": ..., "output": ...}``.
    """
    visible = is_visible(status)
    stored: list[str] = store.keys()  # an OutputStore, not a mapping: keys() lists them
    indices = sorted({int(key) for key in stored if key.isdigit()})
    for index in indices:
        if not visible(index):
            continue  # written before a death, its position never saved: a redo's
        value = store.get(f"{index:08d}")
        if value is not None:
            yield index, value


def open_outputs(
    spec: OutputsSpec,
    *,
    status: ResumableBatchStatus,
    namespace: str,
    name: str,
    uid: str,
    directory: Path | None = None,
) -> Any:
    """The output store of one batch's current run, for reading.

    ``directory``: where a directory store is (here, not in a pod); ``uid``: the
    batch's metadata.uid (a local run's store id). Raises ConfigError (from the
    S3 client) when the bucket cannot be used, ValueError when a directory
    store is asked for without a directory.
    """
    if spec.s3 is not None:
        from resumable import _s3

        root = _s3.batch_root(
            spec.s3, namespace=namespace, name=name, uid=uid, run_id=status.run_id
        )
        return _s3.S3Outputs(_s3.open_bucket(spec.s3), lambda: root, "outputs")
    if spec.status is not None:
        from resumable._inline import InlineOutputs

        inline = InlineOutputs(max_bytes=spec.status.max_bytes)
        inline.load(status.checkpoint.outputs)
        return inline
    if directory is None:
        raise ValueError("a directory store needs its directory")
    from resumable._store import DirectoryOutputs

    return DirectoryOutputs(directory)
