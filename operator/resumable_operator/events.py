"""Event recording: the decision's events, posted as core/v1 Events on the batch.

A refused Event is logged and dropped (an event is a note, never a reason to
reconcile again); every event is also logged at INFO. Used by
:mod:`resumable_operator.controller`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from resumable.kubeapi import ApiError, KubeApi
from resumable.v1alpha1 import ResumableBatch
from resumable_core import objects
from resumable_core.decision import EventPlan

log = logging.getLogger("resumable_operator")


class EventRecorder:
    """Posts events about batches."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def record(self, batch: ResumableBatch, plans: Iterable[EventPlan], *, stamp: str) -> None:
        """Post each event, stamped ``stamp``, in order."""
        for plan in plans:
            self._post(batch, plan, stamp)

    def _post(self, batch: ResumableBatch, plan: EventPlan, stamp: str) -> None:
        ns, name = batch.metadata.namespace, batch.metadata.name
        try:
            self.api.request(
                "POST",
                f"/api/v1/namespaces/{ns}/events",
                body=objects.event_manifest(batch, plan, stamp),
            )
        except ApiError as exc:
            log.warning("cannot record event %s on %s: %s", plan.reason, name, exc)
        log.info("%s/%s %s: %s", ns, name, plan.reason, plan.message)
