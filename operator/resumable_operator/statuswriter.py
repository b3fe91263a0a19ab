"""The status writer: a decision's status, sent as the fenced JSON patch, or refused.

The patch is :func:`resumable_core.patches.decision_patch` (the local runner
writes the same one): it tests the attempt, and, when the decision rests on the
checkpoint, the fields every worker write changes. The API server answers a
failed test with 422 (409 for a conflict): the batch changed since it was read,
and the controller reads and decides again (:class:`StatusConflict`). Used by
:mod:`resumable_operator.controller`.
"""

from __future__ import annotations

from typing import Any

from resumable.kubeapi import JSON_PATCH, ConflictError, InvalidError, KubeApi, batch_path
from resumable_core import patches
from resumable_core.decision import Decision


class StatusConflictError(Exception):
    """The batch's status changed since it was read: decide again from what is there."""


class StatusWriter:
    """Writes decisions' statuses through the status subresource."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def write(
        self, namespace: str, name: str, read: dict[str, Any] | None, decision: Decision
    ) -> dict[str, Any] | None:
        """Write ``decision.status`` over ``read`` (the status it was decided from).

        Returns the status now stored (``read`` when there was nothing to write).
        Raises StatusConflictError when a fence refused the write.
        """
        ops = patches.decision_patch(read, decision)
        if not ops:
            return read
        try:
            written = self.api.request(
                "PATCH",
                batch_path(namespace, name, status=True),
                body=ops,
                content_type=JSON_PATCH,
            )
        except (ConflictError, InvalidError) as exc:  # a test op failed: changed meanwhile
            raise StatusConflictError(exc.message) from exc
        stored: dict[str, Any] | None = (written or {}).get("status", read)
        return stored
