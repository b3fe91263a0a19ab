"""Pod control: list, create and delete a batch's worker pods, and ensure its worker RBAC.

In the manner of client-go's ``PodControl``: the controller
(:mod:`resumable_operator.controller`) asks for a pod, this module makes the API
calls and remembers, per batch, a create that has not gone through, so the
next decision is told how it went (:class:`~resumable_core.decision.PodCreate`):

* refused for now (403: a quota, a missing service account; 429, 5xx): retried
  for the same attempt, the delay doubling from 1 s up to
  :data:`~resumable_core.policy.podcreate.CREATE_RETRY_MAX_SECONDS` (or the
  server's Retry-After, if longer);
* refused as invalid (400/422): reported, never retried;
* the name held by a pod another object owns (an earlier batch of the same
  name, not yet garbage-collected): reported, so the next attempt takes the
  next name.

Before each pod of a batch without its own service account, the batch's
ServiceAccount, Role and RoleBinding are made sure of (and a wider Role from an
older operator narrowed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resumable import v1alpha1
from resumable.constants import LABEL_BATCH
from resumable.kubeapi import (
    MERGE_PATCH,
    ApiError,
    BadRequestError,
    ConflictError,
    InvalidError,
    KubeApi,
    NotFoundError,
)
from resumable.v1alpha1 import ResumableBatch
from resumable_core import objects
from resumable_core.decision import CreateResult, Placement, PodCreate, PodPlan
from resumable_core.policy.podcreate import CREATE_RETRY_MAX_SECONDS

log = logging.getLogger("resumable_operator")

Key = tuple[str, str]


@dataclass(frozen=True)
class _Unfinished:
    """A create for an attempt that has not gone through: the last try's result."""

    uid: str
    pod: str
    attempt: int
    result: CreateResult  # retrying, refused or taken
    message: str
    failures: int = 0  # refusals for now in a row
    due: float = 0.0  # clock() of the next try, while retrying


class PodControl:
    """The API calls for a batch's pods and worker RBAC, and the creates in progress."""

    def __init__(self, api: KubeApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._lock = threading.Lock()  # reconciles of different batches run in parallel
        self._unfinished: dict[Key, _Unfinished] = {}
        #: (namespace, name, uid) of batches whose worker Role this operator checked.
        self._narrowed: set[tuple[str, str, str]] = set()

    # --------------------------------------------------------------- observing

    def list(self, namespace: str, batch: str) -> list[dict[str, Any]]:
        """The pods carrying the batch's label (any owner: the caller filters)."""
        try:
            listing = self.api.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods",
                query={"labelSelector": f"{LABEL_BATCH}={batch}"},
            )
        except BadRequestError:
            # The name is no valid label value (over 63 characters): no pod can
            # carry it, and creating one fails the batch with the server's reason.
            return []
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    def report(
        self, key: Key, batch: ResumableBatch, ours: set[str], others: set[str]
    ) -> PodCreate | None:
        """What the next decision must know about the active attempt's pod create.

        ``ours`` are the names of the batch's pods, ``others`` those of pods with its
        label that another object owns. A report outlives nothing it is not about:
        another attempt, another batch of the name, a pod now seen.
        """
        status, uid = batch.status, batch.metadata.uid or ""
        # The pods the status says should exist: the active attempt's, or each
        # parallel worker slot's, with the attempt each belongs to.
        name = batch.metadata.name
        expected = {w.pod(name): w.attempt for w in status.workers if w.started}
        if status.active_pod:
            expected[status.active_pod] = status.checkpoint.attempt
        with self._lock:
            last = self._unfinished.get(key)
            if last is not None and (
                last.uid != uid or expected.get(last.pod) != last.attempt or last.pod in ours
            ):
                del self._unfinished[key]
                last = None
        if last is not None:
            return PodCreate(last.pod, last.attempt, last.result, last.message)
        for pod, attempt in expected.items():
            if pod not in ours and pod in others:
                return PodCreate(pod, attempt, "taken", f"pod {pod} belongs to another object")
        return None

    # ---------------------------------------------------------------- creating

    def create(
        self,
        key: Key,
        batch: ResumableBatch,
        plan: PodPlan,
        *,
        placement: Placement | None = None,
    ) -> PodCreate | None:
        """Create the planned pod (and the worker RBAC it needs); how it went.

        None when the pod was refused for now and its next try is not due yet
        (:meth:`due_in` says when).
        """
        uid = batch.metadata.uid or ""
        with self._lock:
            last = self._unfinished.get(key)
        same = last is not None and (last.uid, last.pod, last.attempt) == (
            uid,
            plan.name,
            plan.attempt,
        )
        failures = 0
        if same and last is not None and last.result == "retrying":
            if self.clock() < last.due:
                return None
            failures = last.failures
        result, message, retry_after = self._create_worker(batch, plan, placement)
        if result == "created":
            with self._lock:
                self._unfinished.pop(key, None)
            return PodCreate(plan.name, plan.attempt, "created")
        retry_in: float | None = None
        if result == "retrying":
            failures += 1
            retry_in = min(CREATE_RETRY_MAX_SECONDS, 2.0 ** (failures - 1))
            retry_in = max(retry_in, min(CREATE_RETRY_MAX_SECONDS, retry_after or 0.0))
            log.warning("%s/%s: cannot create pod %s yet: %s", *key, plan.name, message)
        due = self.clock() + retry_in if retry_in is not None else 0.0
        with self._lock:
            self._unfinished[key] = _Unfinished(
                uid, plan.name, plan.attempt, result, message, failures, due
            )
        return PodCreate(plan.name, plan.attempt, result, message, retry_in)

    def due_in(self, key: Key) -> float | None:
        """Seconds until the next try of a create refused for now, if one waits."""
        with self._lock:
            last = self._unfinished.get(key)
        if last is None or last.result != "retrying":
            return None
        return max(0.0, last.due - self.clock())

    def forget(self, key: Key) -> None:
        """The batch is gone: drop what is remembered of its creates."""
        with self._lock:
            self._unfinished.pop(key, None)
            self._narrowed = {seen for seen in self._narrowed if seen[:2] != key}

    def narrow_worker_role_once(self, batch: ResumableBatch) -> None:
        """On this operator's first look at a batch, narrow the ``<batch>-worker``
        Role we made if it grants more than :func:`objects.worker_role_rules`.

        Operators before 0.3 let the worker patch its batch itself; a worker still
        running under such a Role loses that right as soon as an upgraded operator
        sees its batch, not only when its next pod is created, and whatever
        service account the template names. One GET per batch per operator start.
        Raises ApiError when the server refuses (the reconcile is retried).
        """
        ns = batch.metadata.namespace or "default"
        seen = (ns, batch.metadata.name, batch.metadata.uid or "")
        with self._lock:
            if seen in self._narrowed:
                return
        wanted = next(o for o in objects.worker_rbac(batch) if o["kind"] == "Role")
        url = (
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{wanted['metadata']['name']}"
        )
        try:
            existing = self.api.request("GET", url)
        except NotFoundError:
            existing = None
        if existing is not None:
            self._narrow(batch, url, existing, wanted)
        with self._lock:
            self._narrowed.add(seen)

    def _create_worker(
        self, batch: ResumableBatch, plan: PodPlan, placement: Placement | None
    ) -> tuple[CreateResult, str, float | None]:
        """Create the attempt's pod (and the worker RBAC it needs): what happened,
        why, and the server's Retry-After."""
        ns = batch.metadata.namespace or "default"
        try:
            if not batch.spec.template.spec.service_account_name:
                waiting = self.ensure_worker_rbac(batch)
                if waiting:
                    return "retrying", waiting, None
            try:
                # Strict: a misspelt template field (`comand:`) is refused with a
                # message naming it, not dropped to leave a worker without a command.
                self.api.request(
                    "POST",
                    f"/api/v1/namespaces/{ns}/pods",
                    body=objects.build_pod(batch, plan, placement=placement),
                    query={"fieldValidation": "Strict"},
                )
            except ConflictError:
                return self._name_in_use(batch, plan)
        except (BadRequestError, InvalidError) as exc:  # 400, 422: no retry makes it valid
            return "refused", exc.message, None
        except ApiError as exc:
            return "retrying", f"{exc.status or 'no response'}: {exc.message}", exc.retry_after
        return "created", "", None

    def _name_in_use(
        self, batch: ResumableBatch, plan: PodPlan
    ) -> tuple[CreateResult, str, float | None]:
        """A pod of the planned name exists: ours (an earlier create went through after
        all), another object's, or one being deleted."""
        ns = batch.metadata.namespace or "default"
        try:
            existing = self.api.request("GET", f"/api/v1/namespaces/{ns}/pods/{plan.name}")
        except NotFoundError:  # deleted in between: try again soon
            return "retrying", f"pod {plan.name} was being deleted", None
        if not objects.owned_by(existing, batch.metadata.uid or ""):
            return "taken", f"pod {plan.name} belongs to another object", None
        return "created", "", None

    # ---------------------------------------------------------------- deleting

    def delete(self, namespace: str, name: str, *, graceful: bool) -> None:
        """Delete a pod (gracefully, or at once for one a lost node holds); gone is fine."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if not graceful:
            body["gracePeriodSeconds"] = 0
        with contextlib.suppress(NotFoundError):  # gone already
            self.api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body)

    # -------------------------------------------------------------- worker RBAC

    def ensure_worker_rbac(self, batch: ResumableBatch) -> str:
        """Make sure the batch's worker ServiceAccount, Role and RoleBinding exist, and
        that the Role grants what :func:`objects.worker_role_rules` says, no more.

        Checked before every pod it creates (they may have been deleted or edited
        since). A refused narrowing (403) keeps the pod waiting, never runs it with
        the wider Role.
        Returns why the pod must wait ("" when it need not): an object of that name
        still controlled by an earlier batch of the same name, which the garbage
        collector is about to delete. Raises ApiError when the server refuses.
        """
        ns = batch.metadata.namespace
        paths = {
            "ServiceAccount": f"/api/v1/namespaces/{ns}/serviceaccounts",
            "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        }
        for obj in objects.worker_rbac(batch):
            kind, obj_name = obj["kind"], obj["metadata"]["name"]
            url = f"{paths[kind]}/{obj_name}"
            try:
                existing = self.api.request("GET", url)
            except NotFoundError:
                try:
                    self.api.request("POST", paths[kind], body=obj)
                    continue
                except ConflictError:
                    return f"{kind} {obj_name} was created by someone else meanwhile"
            waiting = self._reuse(batch, kind, url, existing, obj)
            if waiting:
                return waiting
        return ""

    def _reuse(
        self,
        batch: ResumableBatch,
        kind: str,
        url: str,
        existing: dict[str, Any],
        wanted: dict[str, Any],
    ) -> str:
        """An existing worker object: wait for an earlier batch's to go, narrow our
        Role if an older operator granted more, else use it as is."""
        owner = objects.controller_ref(existing)
        name = batch.metadata.name
        if (
            owner is not None
            and owner.get("kind") == v1alpha1.KIND
            and owner.get("name") == name
            and owner.get("uid") != batch.metadata.uid
        ):
            return (
                f"{kind} {url.rsplit('/', 1)[1]} still belongs to an earlier batch named "
                f"{name}; waiting for the garbage collector to remove it"
            )
        if kind == "Role":
            self._narrow(batch, url, existing, wanted)
        # Ours, or not made by an earlier batch (nothing deletes it): used as is.
        return ""

    def _narrow(
        self, batch: ResumableBatch, url: str, existing: dict[str, Any], wanted: dict[str, Any]
    ) -> None:
        """Our Role for this batch, granting more than it should (0.2 let the worker
        patch its batch's spec): narrowed before any pod runs with it again. A Role
        of that name we did not make for this batch is left alone."""
        owner = objects.controller_ref(existing)
        if (
            owner is None
            or owner.get("uid") != batch.metadata.uid
            or existing.get("rules") == wanted["rules"]
        ):
            return
        self.api.request("PATCH", url, body={"rules": wanted["rules"]}, content_type=MERGE_PATCH)
        log.warning(
            "%s/%s: narrowed the worker Role %s to read the batch and write its status",
            batch.metadata.namespace,
            batch.metadata.name,
            url.rsplit("/", 1)[1],
        )
