"""Build the Kubernetes objects the operator creates, and read the pods it observes.

Pure functions from models to manifests (the worker pod with its injected
environment, the per-batch least-privilege ServiceAccount, Role and RoleBinding,
Events) and from pod manifests back to :class:`PodView`. Used by the executors
(:mod:`resumable_operator.controller`, the local runner); tested without a cluster.
The fenced status patch is :mod:`resumable_core.patches`.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

from resumable import constants as names
from resumable import v1alpha1
from resumable.constants import (
    LABEL_ATTEMPT,
    LABEL_BATCH,
    LABEL_MANAGED_BY,
    LABEL_RUN_ID,
    LABEL_SLOT,
)
from resumable.constants import MANAGED_BY as MANAGED_BY
from resumable.v1alpha1 import ResumableBatch
from resumable_core.decision import EventPlan, Placement, PodPhase, PodPlan, PodView
from resumable_core.patches import status_patch as status_patch  # where it used to live

_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def owner_reference(batch: ResumableBatch) -> dict[str, Any]:
    """The controller ownerReference garbage collection needs."""
    return {
        "apiVersion": v1alpha1.API_VERSION,
        "kind": v1alpha1.KIND,
        "name": batch.metadata.name,
        "uid": batch.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def worker_service_account(batch: ResumableBatch) -> str:
    """The service account the batch's pods run as."""
    return batch.spec.template.spec.service_account_name or f"{batch.metadata.name}-worker"


def injected_env(batch: ResumableBatch, plan: PodPlan) -> list[dict[str, Any]]:
    """The RESUMABLE_* variables every worker container gets (and spec.outputs's)."""
    env = {
        names.ENV_BATCH_NAME: batch.metadata.name,
        names.ENV_NAMESPACE: batch.metadata.namespace or "default",
        names.ENV_ATTEMPT: str(plan.attempt),
        names.ENV_RUN_ID: plan.run_id or batch.spec.run_id,
        names.ENV_STORE: "kube",
        names.ENV_CHECKPOINT: json.dumps(
            batch.spec.checkpoint.model_dump(by_alias=True, exclude_none=True)
        ),
    }
    if plan.slot is None:
        env[names.ENV_START_INDEX] = str(plan.start_index)
    else:
        # A parallel worker has no start index: it claims chunks for its slot.
        env[names.ENV_WORKER_SLOT] = str(plan.slot)
        env[names.ENV_PARALLELISM] = str(plan.parallelism)
        if plan.chunk_size is not None:
            env[names.ENV_CHUNK_SIZE] = str(plan.chunk_size)
    if plan.total_items is not None:
        env[names.ENV_TOTAL_ITEMS] = str(plan.total_items)
    if plan.careful:
        env[names.ENV_CAREFUL] = "1"
    outputs = batch.spec.outputs
    if outputs.directory is not None:
        env[names.ENV_OUTPUT_DIR] = outputs.directory.path
    elif outputs.s3 is not None or outputs.status is not None:
        env[names.ENV_OUTPUTS] = outputs.model_dump_json(by_alias=True, exclude_none=True)
    injected: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    return injected + outputs_credentials(batch)


def outputs_credentials(batch: ResumableBatch) -> list[dict[str, Any]]:
    """AWS_* variables from spec.outputs.s3.credentialsSecret (secretKeyRef), if it names one.

    The worker's S3 client reads them like any AWS client; the Secret's values never
    pass through the operator. Without a Secret the pod's own environment counts
    (AWS_* set in the template, or a web identity token as IRSA mounts it).
    """
    s3 = batch.spec.outputs.s3
    secret = s3.credentials_secret if s3 is not None else None
    if secret is None:
        return []
    keys = [
        ("AWS_ACCESS_KEY_ID", secret.access_key_id_key),
        ("AWS_SECRET_ACCESS_KEY", secret.secret_access_key_key),
    ]
    if secret.session_token_key:
        keys.append(("AWS_SESSION_TOKEN", secret.session_token_key))
    return [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}}}
        for var, key in keys
    ]


def build_pod(
    batch: ResumableBatch, plan: PodPlan, *, placement: Placement | None = None
) -> dict[str, Any]:
    """The worker pod of one attempt, from spec.template (``placement``: the node
    labels and tolerations of the flavour Kueue admitted the batch to)."""
    template = batch.spec.template.model_dump(by_alias=True, exclude_none=True, mode="json")
    meta = copy.deepcopy(template.get("metadata") or {})
    spec = copy.deepcopy(template["spec"])
    labels = dict(meta.get("labels") or {})
    labels.update(
        {
            LABEL_BATCH: batch.metadata.name,
            LABEL_ATTEMPT: str(plan.attempt),
            LABEL_MANAGED_BY: MANAGED_BY,
        }
    )
    if plan.run_id or batch.spec.run_id:
        labels[LABEL_RUN_ID] = plan.run_id or batch.spec.run_id
    if plan.slot is not None:
        labels[LABEL_SLOT] = str(plan.slot)
    extra = injected_env(batch, plan)
    names = {e["name"] for e in extra}
    for container in spec["containers"]:
        kept = [e for e in container.get("env", []) if e.get("name") not in names]
        # Ours first: Kubernetes expands $(VAR) only from variables defined earlier,
        # so a user value such as /data/$(RESUMABLE_BATCH_NAME) works.
        container["env"] = extra + kept
    spec["restartPolicy"] = "Never"
    spec["serviceAccountName"] = worker_service_account(batch)
    if placement is not None:
        if placement.node_selector:
            spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **placement.node_selector}
        tolerations = list(spec.get("tolerations") or [])
        tolerations.extend(t for t in placement.tolerations if t not in tolerations)
        if tolerations:
            spec["tolerations"] = tolerations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": plan.name,
            "namespace": batch.metadata.namespace,
            "labels": labels,
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(batch)],
        },
        "spec": spec,
    }


def worker_role_rules(batch: ResumableBatch) -> list[dict[str, Any]]:
    """What a batch's worker may do: read its batch, read and patch its status; no more.

    Never ``patch`` on the batch itself: its spec steers what the operator creates
    next (template, service account, image), and the worker runs code that reads
    untrusted input. ``get`` on the batch is kept for workers built with SDK 0.2,
    which read it there (the SDK reads through the status subresource since 0.3);
    it shows the worker nothing its own pod does not already carry.
    """
    name = [batch.metadata.name]
    return [
        {
            "apiGroups": [v1alpha1.GROUP],
            "resources": [v1alpha1.PLURAL],
            "resourceNames": name,
            "verbs": ["get"],
        },
        {
            "apiGroups": [v1alpha1.GROUP],
            "resources": [f"{v1alpha1.PLURAL}/status"],
            "resourceNames": name,
            "verbs": ["get", "patch"],
        },
    ]


def worker_rbac(batch: ResumableBatch) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding letting the worker read its batch and write
    only its status (see :func:`worker_role_rules`)."""
    name = f"{batch.metadata.name}-worker"
    ns = batch.metadata.namespace
    labels = {LABEL_BATCH: batch.metadata.name, LABEL_MANAGED_BY: MANAGED_BY}
    meta = {
        "name": name,
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [owner_reference(batch)],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": worker_role_rules(batch),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    ]


def pod_view(pod: dict[str, Any]) -> PodView:
    """Read what the decision needs from a pod manifest."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    try:
        attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        attempt = 0
    slot_label = labels.get(LABEL_SLOT)
    slot = int(slot_label) if slot_label is not None and slot_label.isdigit() else None
    phase = status.get("phase") or "Pending"
    exit_code: int | None = None
    reason = message = ""
    # The first spec container runs the batch; the kubelet lists statuses by name,
    # so a sidecar's may come first.
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    worker = containers[0].get("name")
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term and (worker is None or cs.get("name") == worker):
            exit_code = term.get("exitCode")
            reason = term.get("reason") or ""
            message = str(term.get("message") or "")
            break
    disruption = ""
    for c in status.get("conditions") or []:
        if c.get("type") == names.DISRUPTION_TARGET and c.get("status") == "True":
            disruption = c.get("reason") or names.DISRUPTION_TARGET
    if not disruption and status.get("reason") in names.POD_DISRUPTION_REASONS:
        disruption = str(status.get("reason"))
    if phase == "Unknown":
        disruption = disruption or names.DISRUPTION_NODE_LOST
    return PodView(
        name=meta.get("name", ""),
        attempt=attempt,
        phase=cast(PodPhase, phase) if phase in _PHASES else "Unknown",
        exit_code=exit_code,
        reason=reason,
        message=message,
        disruption=disruption,
        deleting=bool(meta.get("deletionTimestamp")),
        delete_by=str(meta.get("deletionTimestamp") or ""),
        slot=slot,
    )


def event_manifest(batch: ResumableBatch, plan: EventPlan, stamp: str) -> dict[str, Any]:
    """A core/v1 Event about the batch."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{batch.metadata.name}.",
            "namespace": batch.metadata.namespace,
        },
        "involvedObject": {
            "apiVersion": v1alpha1.API_VERSION,
            "kind": v1alpha1.KIND,
            "name": batch.metadata.name,
            "namespace": batch.metadata.namespace,
            "uid": batch.metadata.uid,
        },
        "type": plan.type,
        "reason": plan.reason,
        "message": plan.message[:1024],
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "reportingInstance": MANAGED_BY,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object's controller ownerReference, if it has one."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """True when one of the object's ownerReferences names that uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)
