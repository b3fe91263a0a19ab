"""Tiny outputs kept in the batch's status (``spec.outputs.status``), under a byte budget.

:class:`InlineOutputs` is the :class:`~resumable._store.OutputStore` that
:func:`resumable.start` gives a run when spec.outputs.status asks for it: the
run copies its values into ``status.checkpoint.outputs`` with every checkpoint
write (:meth:`resumable._run.Run._build_checkpoint`), so an output and the
position that covers it land in one write and a redo simply replaces it. The
whole set is bounded by ``maxBytes`` (at most
:data:`~resumable.v1alpha1.MAX_INLINE_OUTPUT_BYTES`, far below etcd's 1.5 MiB
object limit); a put that would pass it is refused with an error that names the
budget and the remedy, before anything is written.
"""

from __future__ import annotations

import json
from typing import Any

from resumable._store import _encode_output
from resumable.errors import ResumableError


class OutputBudgetError(ResumableError):
    """Outputs kept in status would pass spec.outputs.status.maxBytes."""


class InlineOutputs:
    """Item outputs held in memory and written into the checkpoint with it."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: dict[str, Any] = {}
        self._sizes: dict[str, int] = {}
        self._total = 2  # "{}"

    def load(self, saved: dict[str, Any] | None) -> None:
        """Start from the outputs a saved checkpoint holds."""
        self._values, self._sizes, self._total = {}, {}, 2
        for key, value in (saved or {}).items():
            self._add(key, value, len(_encode_output(value)))

    def _add(self, key: str, value: Any, size: int) -> None:
        entry = len(json.dumps(key)) + 1 + size + 1  # "key":value,
        self._total += entry - self._sizes.get(key, 0)
        self._sizes[key] = entry
        self._values[key] = value

    def put(self, key: str, value: Any) -> None:
        """Keep value for key; refused when the outputs would pass the budget."""
        encoded = _encode_output(value)
        entry = len(json.dumps(key)) + 1 + len(encoded) + 1
        total = self._total + entry - self._sizes.get(key, 0)
        if total > self.max_bytes:
            raise OutputBudgetError(
                f"item outputs kept in status would take {total} bytes, over the "
                f"spec.outputs.status.maxBytes budget of {self.max_bytes}: keep outputs "
                "in a bucket (spec.outputs.s3) or a directory (spec.outputs.directory)"
            )
        self._add(key, json.loads(encoded), len(encoded))

    def get(self, key: str) -> Any | None:
        """The value kept for key, or None."""
        return self._values.get(key)

    def keys(self) -> list[str]:
        """Every key, sorted (item order)."""
        return sorted(self._values)

    def sync(self) -> None:
        """Nothing to do: the values are written with the checkpoint itself."""

    def snapshot(self) -> dict[str, Any]:
        """The values for the next checkpoint write (a copy: later puts do not change it)."""
        return dict(self._values)
