"""The Kueue Workload of a batch: its manifest, how it is read, and the status changes.

Pure functions, used by the operator's :mod:`resumable_operator.workloads` (the
API calls) and tested without a cluster. The API is ``kueue.x-k8s.io/v1beta2``,
the version Kueue 0.17 serves and stores. One podSet, ``main``: the batch's pod
template, ``spec.parallelism`` pods, so one admission covers every worker.
The decisions about it are :mod:`resumable_core.policy.admission`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from resumable import constants as names
from resumable.v1alpha1 import ResumableBatch
from resumable_core.decision import Placement, WorkloadView
from resumable_core.objects import owner_reference

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
#: The podSet's name (one podSet: every worker is alike).
POD_SET = "main"
#: The label Kueue's job framework puts on Workloads: the owning job's uid. Kueue's
#: Preempted message names the preemptor by it ("JobUID: ...").
LABEL_JOB_UID = "kueue.x-k8s.io/job-uid"
#: The Workload's priority sources, as priorityClassRef names them.
WORKLOAD_PRIORITY_CLASS = ("kueue.x-k8s.io", "WorkloadPriorityClass")
POD_PRIORITY_CLASS = ("scheduling.k8s.io", "PriorityClass")


def workload_name(batch: ResumableBatch) -> str:
    """The batch's Workload: its name and a digest of its uid (a later batch of the same
    name gets another, as Kueue names its jobs' Workloads)."""
    digest = hashlib.sha256((batch.metadata.uid or "").encode()).hexdigest()[:5]
    return f"resumablebatch-{batch.metadata.name[:230]}-{digest}"


def priority_source(batch: ResumableBatch) -> tuple[str, str, str] | None:
    """(group, kind, name) of the priority class the Workload takes, if any: the
    ``kueue.x-k8s.io/priority-class`` label's WorkloadPriorityClass first, else the
    pod template's PriorityClass (Kueue's own order for its jobs)."""
    labels = (batch.metadata.model_extra or {}).get("labels") or {}
    wpc = labels.get(names.LABEL_PRIORITY_CLASS) if isinstance(labels, dict) else None
    if wpc:
        return (*WORKLOAD_PRIORITY_CLASS, str(wpc))
    pod_class = (batch.spec.template.spec.model_extra or {}).get("priorityClassName")
    if pod_class:
        return (*POD_PRIORITY_CLASS, str(pod_class))
    return None


def build_workload(
    batch: ResumableBatch, queue: str, *, priority: int | None = None
) -> dict[str, Any]:
    """The Workload for the batch in LocalQueue ``queue`` (``priority``: the value of
    :func:`priority_source`'s class, which the executor reads)."""
    template = batch.spec.template.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec: dict[str, Any] = {
        "queueName": queue,
        "podSets": [{"name": POD_SET, "count": batch.spec.parallelism, "template": template}],
    }
    source = priority_source(batch)
    if source is not None and priority is not None:
        group, kind, name = source
        spec["priorityClassRef"] = {"group": group, "kind": kind, "name": name}
        spec["priority"] = priority
    return {
        "apiVersion": API_VERSION,
        "kind": "Workload",
        "metadata": {
            "name": workload_name(batch),
            "namespace": batch.metadata.namespace,
            "labels": {
                names.LABEL_BATCH: batch.metadata.name,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
                names.LABEL_QUEUE_NAME: queue,
                LABEL_JOB_UID: batch.metadata.uid or "",
            },
            "ownerReferences": [owner_reference(batch)],
        },
        "spec": spec,
    }


def _conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in found}


def _true(conditions: dict[str, dict[str, Any]], type_: str) -> bool:
    return conditions.get(type_, {}).get("status") == "True"


def admitted_flavors(obj: Mapping[str, Any]) -> list[str]:
    """The ResourceFlavors the admission assigned (to any resource of any podSet)."""
    admission = (obj.get("status") or {}).get("admission") or {}
    flavors: list[str] = []
    for assignment in admission.get("podSetAssignments") or []:
        for flavor in (assignment.get("flavors") or {}).values():
            if flavor not in flavors:
                flavors.append(str(flavor))
    return flavors


def placement(obj: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]]) -> Placement:
    """Node labels and tolerations for the workers: the admitted flavours' (``flavors``:
    the ResourceFlavor objects by name), then admission checks' podSetUpdates."""
    selector: dict[str, str] = {}
    tolerations: list[dict[str, object]] = []
    for name in admitted_flavors(obj):
        spec = (flavors.get(name) or {}).get("spec") or {}
        selector.update({str(k): str(v) for k, v in (spec.get("nodeLabels") or {}).items()})
        tolerations.extend(t for t in spec.get("tolerations") or [] if t not in tolerations)
    for check in (obj.get("status") or {}).get("admissionChecks") or []:
        for update in check.get("podSetUpdates") or []:
            if update.get("name") != POD_SET:
                continue
            selector.update(update.get("nodeSelector") or {})
            tolerations.extend(t for t in update.get("tolerations") or [] if t not in tolerations)
    return Placement(node_selector=selector, tolerations=tolerations)


def workload_view(
    obj: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]] | None = None
) -> WorkloadView:
    """Read what the decision needs from a Workload (and its admitted ResourceFlavors)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    conds = _conditions(obj)
    evicted = conds.get("Evicted", {}) if _true(conds, "Evicted") else {}
    preempted = conds.get("Preempted", {}) if _true(conds, "Preempted") else {}
    reserved = _true(conds, "QuotaReserved")
    pending = "" if reserved else str(conds.get("QuotaReserved", {}).get("message") or "")
    requeue = status.get("requeueState") or {}
    admission = status.get("admission") or {}
    return WorkloadView(
        name=str(meta.get("name", "")),
        active=spec.get("active") is not False,
        quota_reserved=reserved,
        admitted=_true(conds, "Admitted"),
        finished=_true(conds, "Finished"),
        evicted=bool(evicted),
        evicted_reason=str(evicted.get("reason") or ""),
        evicted_message=str(evicted.get("message") or ""),
        preempted_message=str(preempted.get("message") or ""),
        pending_message=pending,
        requeue_at=str(requeue.get("requeueAt") or ""),
        cluster_queue=str(admission.get("clusterQueue") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        placement=placement(obj, flavors or {}),
    )


def _set(conditions: list[dict[str, Any]], new: dict[str, Any]) -> None:
    """Set a condition in a Workload's list, keeping lastTransitionTime when the status holds."""
    for i, c in enumerate(conditions):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                new = {**new, "lastTransitionTime": c.get("lastTransitionTime")}
            conditions[i] = new
            return
    conditions.append(new)


def requeue_status(obj: Mapping[str, Any], reason: str, message: str, stamp: str) -> dict[str, Any]:
    """The status after clearing an evicted Workload's quota reservation, as Kueue's
    job framework does once its job stopped (workload.UnsetQuotaReservationWithCondition
    and SetRequeuedCondition): QuotaReserved and Admitted False, no admission, and
    Requeued True after a preemption. Conditions are sent whole (a merge patch
    replaces lists)."""
    conds = [dict(c) for c in (obj.get("status") or {}).get("conditions") or []]
    generation = (obj.get("metadata") or {}).get("generation")
    evicted = _conditions(obj).get("Evicted", {})

    def condition(type_: str, status: str, why: str, text: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "reason": why,
            "message": text[:32768],
            "lastTransitionTime": stamp,
            "observedGeneration": generation,
        }

    evicted_reason = str(evicted.get("reason") or "")
    if evicted_reason:
        requeued = evicted_reason in ("Preempted", "NodeFailures")
        _set(
            conds,
            condition("Requeued", "True" if requeued else "False", evicted_reason, message),
        )
    _set(conds, condition("QuotaReserved", "False", reason, message))
    if any(c.get("type") == "Admitted" for c in conds):
        _set(
            conds,
            condition("Admitted", "False", "NoReservation", "The workload has no reservation"),
        )
    return {"conditions": conds, "admission": None}


def finish_status(obj: Mapping[str, Any], reason: str, message: str, stamp: str) -> dict[str, Any]:
    """The status with Finished True (Kueue then releases the quota)."""
    conds = [dict(c) for c in (obj.get("status") or {}).get("conditions") or []]
    _set(
        conds,
        {
            "type": "Finished",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp,
            "observedGeneration": (obj.get("metadata") or {}).get("generation"),
        },
    )
    return {"conditions": conds}
