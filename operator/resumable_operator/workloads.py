"""Workload control: the API calls for a batch's Kueue Workload, nothing decided here.

Used by :mod:`resumable_operator.controller` for batches labelled
``kueue.x-k8s.io/queue-name`` only (a batch without it costs no Kueue call):
:meth:`WorkloadControl.observe` reads the Workload and the ResourceFlavors its
admission names into a :class:`~resumable_core.decision.WorkloadView`;
:meth:`WorkloadControl.apply` carries out what
:mod:`resumable_core.policy.admission` decided (create, requeue, finish, delete).
The manifests and status changes are :mod:`resumable_core.kueue`'s. With the
integration off (``RESUMABLE_OPERATOR_KUEUE`` false: the chart's
``kueue.enabled``), a labelled batch is observed as unable to queue, and waits.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from resumable.kubeapi import (
    MERGE_PATCH,
    ApiError,
    ConflictError,
    KubeApi,
    NotFoundError,
)
from resumable.v1alpha1 import ResumableBatch
from resumable_core import kueue
from resumable_core.decision import WorkloadPlan, WorkloadView
from resumable_core.policy.admission import queue_name_of

log = logging.getLogger("resumable_operator")

#: Why a labelled batch cannot queue while the integration is off.
INTEGRATION_OFF = (
    "the operator runs without its Kueue integration (RESUMABLE_OPERATOR_KUEUE; "
    "the chart's kueue.enabled)"
)


def _path(namespace: str, name: str = "") -> str:
    base = f"/apis/{kueue.API_VERSION}/namespaces/{namespace}/workloads"
    return f"{base}/{name}" if name else base


class WorkloadControl:
    """Reads and changes batches' Workloads (and reads ResourceFlavors)."""

    def __init__(self, api: KubeApi, *, enabled: bool) -> None:
        self.api = api
        self.enabled = enabled

    def observe(self, batch: ResumableBatch) -> WorkloadView | None:
        """The batch's Workload as it stands (None for a batch without a queue label).

        Raises ApiError when the server refuses (the reconcile is retried).
        """
        if not queue_name_of(batch):
            return None
        name = kueue.workload_name(batch)
        if not self.enabled:
            return WorkloadView(name=name, exists=False, unavailable=INTEGRATION_OFF)
        ns = batch.metadata.namespace or "default"
        try:
            obj = self.api.request("GET", _path(ns, name))
        except NotFoundError:
            return WorkloadView(name=name, exists=False)
        flavors: dict[str, Any] = {}
        for flavor in kueue.admitted_flavors(obj):
            with contextlib.suppress(NotFoundError):  # deleted meanwhile: no placement
                flavors[flavor] = self.api.request(
                    "GET", f"/apis/{kueue.API_VERSION}/resourceflavors/{flavor}"
                )
        return kueue.workload_view(obj, flavors)

    def apply(self, batch: ResumableBatch, plan: WorkloadPlan, *, stamp: str) -> None:
        """Carry out the decided change. A refusal is logged (the batch is looked at again)."""
        ns = batch.metadata.namespace or "default"
        try:
            if plan.op == "create":
                self._create(batch)
            elif plan.op == "delete":
                with contextlib.suppress(NotFoundError):
                    self.api.request(
                        "DELETE",
                        _path(ns, plan.name),
                        body={"propagationPolicy": "Background"},
                    )
            else:
                self._update_status(ns, plan, stamp)
        except ApiError as exc:
            log.warning(
                "%s/%s: cannot %s Workload %s: %s",
                ns,
                batch.metadata.name,
                plan.op,
                plan.name,
                exc,
            )
            return
        log.info("%s/%s: Workload %s: %s", ns, batch.metadata.name, plan.name, plan.op)

    def _create(self, batch: ResumableBatch) -> None:
        priority: int | None = None
        source = kueue.priority_source(batch)
        if source is not None:
            group, kind, name = source
            path = (
                f"/apis/{kueue.API_VERSION}/workloadpriorityclasses/{name}"
                if group == kueue.WORKLOAD_PRIORITY_CLASS[0]
                else f"/apis/scheduling.k8s.io/v1/priorityclasses/{name}"
            )
            try:
                priority = int(self.api.request("GET", path).get("value", 0))
            except NotFoundError:
                log.warning("%s %s not found: the Workload gets no priority", kind, name)
        body = kueue.build_workload(batch, queue_name_of(batch), priority=priority)
        with contextlib.suppress(ConflictError):  # made by an earlier pass
            self.api.request("POST", _path(batch.metadata.namespace or "default"), body=body)

    def _update_status(self, ns: str, plan: WorkloadPlan, stamp: str) -> None:
        """requeue or finish: a status patch fenced on the resourceVersion read."""
        obj = self.api.request("GET", _path(ns, plan.name))
        if plan.op == "requeue":
            status = kueue.requeue_status(obj, plan.reason, plan.message, stamp)
        else:
            status = kueue.finish_status(obj, plan.reason, plan.message, stamp)
        body = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": status,
        }
        self.api.request(
            "PATCH", _path(ns, plan.name) + "/status", body=body, content_type=MERGE_PATCH
        )
