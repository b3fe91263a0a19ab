"""The reconcile loop: a keyed work queue that reads, decides and acts, level-based.

kopf's watch handlers only enqueue ``(namespace, name)`` keys; a few workers take
keys one at a time (never the same key twice at once), read the batch's pods and
then the batch fresh from the API server, ask :func:`reconcile.decide` what to do
and apply it: status first (a JSON patch fenced on the attempt number), then pod
deletions, the new pod, events. Duplicate keys collapse in the queue and a missed
event is caught by the periodic requeue, so neither matters. Writes happen only
when the decision changed something.

The queue, its sets and the timers belong to the event loop's thread: ``enqueue``
called from any other thread hands itself over to the loop. Reconciles run in
worker threads; the bookkeeping they share is under a lock.

Pod creation can be refused. A refusal no retry can fix (400/422: an invalid
pod, e.g. a label value) fails the batch with reason ``PodCreateFailed``; editing
the spec tries again. A refusal that may pass (403: quota, a missing service
account; 429, 5xx) is retried for the same attempt with a growing delay,
counting neither a restart nor a disruption; status shows phase Pending and
Progressing reason PodCreateRetrying with the server's message meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from resumable import constants as names
from resumable import v1alpha1
from resumable._kubeapi import JSON_PATCH, MERGE_PATCH, ApiError, KubeApi, batch_path
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_core import conditions as cond
from resumable_core import objects, patches
from resumable_core.reconcile import (
    LABEL_BATCH,
    RESYNC_SECONDS,
    Decision,
    EventPlan,
    PodPlan,
    PodView,
    decide,
    derive_phase,
    ended_pods_to_prune,
    format_time,
)
from resumable_operator import metrics

log = logging.getLogger("resumable_operator")

Key = tuple[str, str]

#: Longest wait between two tries of a create the API server turned down for now.
CREATE_RETRY_MAX_SECONDS = 300.0
#: Events that say an attempt's pod exists: held back until it does.
_START_REASONS = frozenset({names.EVENT_STARTED, cond.REASON_RESUMED})

CreateResult = Literal["created", "refused", "retry", "taken"]


@dataclass
class _PendingCreate:
    """An attempt recorded in status whose pod the API server has not accepted yet."""

    uid: str
    plan: PodPlan
    failures: int
    due: float  # time.monotonic()
    events: list[EventPlan] = field(default_factory=list)  # Started/Resumed, once created
    resumed_after: float | None = None  # seconds from the failure to the decision
    decided_at: float = field(default_factory=time.monotonic)
    #: The Progressing (reason, message) decided for the attempt, shown once it exists.
    started: tuple[str, str] | None = None
    why: str = ""  # the last refusal, while retrying


class Controller:
    """Owns the queue, the workers and the API calls that apply decisions."""

    def __init__(self, api: KubeApi, *, workers: int = 4) -> None:
        self.api = api
        self.workers = workers
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Shared by the reconcile threads (and the loop): guarded by _lock.
        self._lock = threading.Lock()
        self._conditions: dict[Key, frozenset[str]] = {}
        self._seen_items: dict[Key, tuple[str, int, dict[str, Any], int]] = {}
        self._pending: dict[Key, _PendingCreate] = {}
        self._name_taken: dict[Key, tuple[str, str]] = {}  # (batch uid, pod name)
        #: True once the workers run: a standby replica (leader.py) only queues keys,
        #: and counts nothing in the metrics, which the leader does.
        self.acting = False
        self._in_flight = 0  # reconciles running in worker threads (under _lock)
        self._stopped = False  # set by stop(): a reconcile still running writes nothing more

    # ------------------------------------------------------------------ queue

    def start(self) -> None:
        """Start the workers on the running event loop.

        Keys queued before (a standby's, one per batch it has seen) are worked
        off first: a new leader looks at every batch once.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.acting = True
        metrics.LEADER.set(1)
        for index in range(self.workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{index}"))

    async def stop(self, *, wait: float = 10.0) -> None:
        """Stop the workers and pending timers, then wait up to ``wait`` seconds for
        reconciles already running in threads (which make no write once they see
        the controller stopped) to end: a Lease released after this is not held by
        a replica still writing.
        """
        self.acting = False
        self._stopped = True
        metrics.LEADER.set(0)
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + wait
        while self.in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.in_flight():
            log.warning("stopped with %d reconcile(s) still running", self.in_flight())

    def in_flight(self) -> int:
        """Reconciles running now."""
        with self._lock:
            return self._in_flight

    def _reconcile_counted(self, namespace: str, name: str) -> float | None:
        with self._lock:
            self._in_flight += 1
        try:
            return self.reconcile(namespace, name)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _off_loop(self) -> bool:
        """True when called from a thread other than the running loop's."""
        return self._loop is not None and threading.get_ident() != self._loop_thread

    def enqueue(self, namespace: str, name: str, *, delay: float = 0.0) -> None:
        """Ask for a reconcile of the batch, now or after a delay. Duplicates collapse.

        Safe from any thread: off the loop's thread it only schedules itself there.
        """
        if self._off_loop():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(
                functools.partial(self.enqueue, namespace, name, delay=delay)
            )
            return
        key = (namespace, name)
        if delay > 0:
            loop = self._loop or asyncio.get_running_loop()
            existing = self._timers.get(key)
            due = loop.time() + delay
            if existing is not None and existing.when() <= due:
                return
            if existing is not None:
                existing.cancel()
            self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(*key)

    def forget(self, namespace: str, name: str) -> None:
        """The batch is gone: drop its timers and metrics state. Safe from any thread."""
        key = (namespace, name)
        if self._off_loop():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._cancel_timer, key)
        else:
            self._cancel_timer(key)
        with self._lock:
            self._conditions.pop(key, None)
            self._seen_items.pop(key, None)
            self._pending.pop(key, None)
            self._name_taken.pop(key, None)
            self._update_phase_gauge()

    def _cancel_timer(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if key in self._running:  # never two reconciles of one batch at once
                self._again.add(key)
                continue
            self._running.add(key)
            try:
                requeue = await asyncio.to_thread(self._reconcile_counted, *key)
            except Exception:
                log.exception("reconcile of %s/%s failed; retrying in 5s", *key)
                requeue = 5.0
            finally:
                self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.enqueue(*key)
            elif requeue is not None:
                self.enqueue(*key, delay=requeue)

    # -------------------------------------------------------------- observing

    def observe_batch(self, event_type: str | None, body: dict[str, Any]) -> None:
        """Called for every watch event of a batch: metrics, and a reconcile when needed."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.forget(*key)
            return
        status = body.get("status") or {}
        cp = status.get("checkpoint") or {}
        uid = meta.get("uid", "")
        done = int(cp.get("itemsDone", 0) or 0)
        context = cp.get("context") or {}
        redone = int(context.get("redone", 0) or 0) if isinstance(context, dict) else 0
        with self._lock:
            seen = self._seen_items.get(key)
            self._seen_items[key] = (uid, done, cp, redone)
        if seen is not None and seen[0] == uid and self.acting:
            if done > seen[1]:
                metrics.ITEMS_COMPLETED.inc(done - seen[1])
            if cp and cp != seen[2]:
                metrics.CHECKPOINT_WRITES.inc()
            if redone > seen[3]:
                metrics.ITEMS_REDONE.inc(redone - seen[3])
        generation = meta.get("generation")
        conditions = status.get("conditions") or []
        if (
            event_type in (None, "ADDED")
            or not conditions
            or status.get("observedGeneration") != generation
            or (cp.get("finished") and status.get("phase") == "Running")
        ):
            self.enqueue(*key)

    # -------------------------------------------------------------- reconcile

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Read, decide, act for one batch. Returns seconds until it should be looked at again."""
        key = (namespace, name)
        # Pods first, then the batch. A worker makes all its writes before its
        # container ends, so a pod listed as ended has its last checkpoint in the
        # batch read after it; read the other way round, a worker finishing in
        # between looks like "exit 0 with items left" and the batch runs again.
        listed = self._pods(namespace, name)
        try:
            raw = self.api.request("GET", batch_path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                self.forget(namespace, name)
                return None
            raise
        try:
            batch = ResumableBatch.model_validate(raw)
        except ValidationError as exc:
            log.error("%s/%s is not a valid ResumableBatch: %s", namespace, name, exc)
            return None
        uid = batch.metadata.uid or ""
        pods = [p for p in listed if _owned_by(p, uid)]
        others = {p["metadata"]["name"] for p in listed if not _owned_by(p, uid)}
        views = [objects.pod_view(p) for p in pods]
        names = {v.name for v in views}
        status = batch.status
        forced = False

        with self._lock:
            pending = self._pending.get(key)
            taken = self._name_taken.get(key)
        if pending is not None and (
            pending.uid != uid
            or status.active_pod != pending.plan.name
            or status.checkpoint.attempt != pending.plan.attempt
            or pending.plan.name in names
        ):
            pending = None
            with self._lock:
                self._pending.pop(key, None)
        if pending is not None:
            # Not created yet: the attempt is still ours, not a vanished pod.
            views.append(PodView(pending.plan.name, pending.plan.attempt, "Pending"))
        elif (
            status.active_pod
            and status.active_pod not in names
            and (status.active_pod in others or taken == (uid, status.active_pod))
        ):
            # The attempt's pod name is held by another batch's pod (an earlier batch
            # of the same name): ours never existed, so no disruption; the next
            # attempt gets the next name.
            log.info(
                "%s/%s: pod name %s is taken; next attempt", namespace, name, status.active_pod
            )
            status.active_pod = ""
            forced = True

        decision = decide(batch, views, datetime.now(UTC))
        decision.status_changed = decision.status_changed or forced
        if self._stopped:
            return None  # stopped meanwhile (leadership lost, shutting down): write nothing
        return self._apply(batch, raw, decision, views, pending)

    def _pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pods carrying the batch's label (any owner: the caller filters)."""
        try:
            listing = self.api.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods",
                query={"labelSelector": f"{LABEL_BATCH}={name}"},
            )
        except ApiError as exc:
            if exc.status == 400:
                # The name is no valid label value (over 63 characters): no pod can
                # carry it, and creating one fails the batch with the server's reason.
                return []
            raise
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    def _apply(
        self,
        batch: ResumableBatch,
        raw: dict[str, Any],
        decision: Decision,
        views: list[PodView],
        pending: _PendingCreate | None,
    ) -> float | None:
        ns, name = batch.metadata.namespace or "default", batch.metadata.name
        key = (ns, name)
        current: dict[str, Any] | None = raw.get("status")
        if decision.status_changed:
            ops = patches.decision_patch(current, decision)
            if ops:
                try:
                    written = self.api.request(
                        "PATCH",
                        batch_path(ns, name, status=True),
                        body=ops,
                        content_type=JSON_PATCH,
                    )
                except ApiError as exc:
                    if exc.status in (409, 422):
                        log.info(
                            "%s/%s changed while reconciling (%s); again", ns, name, exc.message
                        )
                        return 0.05
                    raise
                current = (written or {}).get("status", current)
        if self._stopped:
            return None  # stopped after the status write: no pods from a stopped replica
        for pod_name, graceful in decision.delete_pods:
            if pending is None or pod_name != pending.plan.name:
                self._delete_pod(ns, pod_name, graceful=graceful)
        stamp = format_time(datetime.now(UTC))
        events = list(decision.events)
        requeue = decision.requeue_after
        final = decision.status
        if decision.create_pod is not None:
            held = [e for e in events if e.reason in _START_REASONS]
            events = [e for e in events if e.reason not in _START_REASONS]
            decided = cond.find(decision.status.conditions, cond.PROGRESSING)
            pending = _PendingCreate(
                batch.metadata.uid or "",
                decision.create_pod,
                failures=0,
                due=0.0,
                events=held,
                resumed_after=decision.resumed_after_seconds,
                started=(decided.reason, decided.message) if decided is not None else None,
            )
        elif pending is not None and (
            decision.status.active_pod != pending.plan.name
            or (pending.plan.name, True) in decision.delete_pods
        ):
            pending = None  # suspended, rerun, finished...: that attempt is off
        outcome: CreateResult | None = None
        if pending is None:
            with self._lock:
                self._pending.pop(key, None)
        elif time.monotonic() < pending.due:
            left = pending.due - time.monotonic()
            requeue = left if requeue is None else min(requeue, left)
        else:
            requeue, outcome = self._try_create(batch, pending, events, requeue)
            if outcome == "refused":
                for event in events:  # what the decision had to say, then the failure
                    self._event(batch, event.type, event.reason, event.message, stamp)
                events = []
                final, requeue = self._fail_create(
                    batch, current, decision.status, pending, pending.why, stamp
                )
        if pending is not None and pending.failures and outcome in (None, "retry", "created"):
            # Status says what is true of the attempt's pod: still refused (written
            # when the refusal changes, not on every try), or created at last.
            final, again = self._show_create(batch, current, final, pending, stamp)
            if again is not None:
                requeue = again if requeue is None else min(requeue, again)
        for event in events:
            self._event(batch, event.type, event.reason, event.message, stamp)
        if decision.outcome is not None and decision.outcome.kind != "succeeded":
            metrics.RESTARTS.labels(reason=decision.outcome.reason).inc()
        for pod_name in ended_pods_to_prune(views, decision.status.active_pod):
            self._delete_pod(ns, pod_name, graceful=False)
        if decision.delete_batch:
            try:
                self.api.request("DELETE", batch_path(ns, name))
            except ApiError as exc:
                if exc.status != 404:
                    raise
            self.forget(ns, name)
            return None
        self._record_conditions(key, final)
        return requeue

    def _try_create(
        self,
        batch: ResumableBatch,
        pending: _PendingCreate,
        events: list[EventPlan],
        requeue: float | None,
    ) -> tuple[float | None, CreateResult]:
        """Create the pending attempt's pod. Returns (requeue, what happened).

        ``pending.why`` says why when it was refused, or will be retried.
        """
        ns, name = batch.metadata.namespace or "default", batch.metadata.name
        key, plan = (ns, name), pending.plan
        outcome, message, retry_after = self._create_worker(batch, plan)
        with self._lock:
            self._pending.pop(key, None)
            if outcome == "taken":
                self._name_taken[key] = (pending.uid, plan.name)
            else:
                self._name_taken.pop(key, None)
        pending.why = message
        if outcome == "created":
            events.extend(pending.events)
            if pending.resumed_after is not None:
                metrics.RESUME_SECONDS.observe(
                    pending.resumed_after + (time.monotonic() - pending.decided_at)
                )
            return RESYNC_SECONDS, outcome
        if outcome == "taken":
            log.info("%s/%s: %s; moving to the next attempt", ns, name, message)
            return 0.05, outcome
        if outcome == "refused":
            return requeue, outcome
        pending.failures += 1
        wait = min(CREATE_RETRY_MAX_SECONDS, 2.0 ** (pending.failures - 1))
        wait = max(wait, min(CREATE_RETRY_MAX_SECONDS, retry_after or 0.0))
        pending.due = time.monotonic() + wait
        with self._lock:
            self._pending[key] = pending
        events.append(
            EventPlan(
                "Warning",
                cond.REASON_POD_CREATE_FAILED,
                f"Cannot create pod {plan.name} yet: {message}; "
                f"trying again in {wait:.0f}s (attempt {plan.attempt} is kept)",
            )
        )
        log.warning("%s/%s: cannot create pod %s yet: %s", ns, name, plan.name, message)
        return wait, outcome

    def _create_worker(
        self, batch: ResumableBatch, plan: PodPlan
    ) -> tuple[CreateResult, str, float | None]:
        """Create the attempt's pod (and the worker RBAC it needs): what happened, and why."""
        ns = batch.metadata.namespace or "default"
        try:
            if not batch.spec.template.spec.service_account_name:
                waiting = self._ensure_worker_rbac(batch)
                if waiting:
                    return "retry", waiting, None
            try:
                # Strict: a misspelt template field (`comand:`) is refused with a
                # message naming it, not dropped to leave a worker without a command.
                self.api.request(
                    "POST",
                    f"/api/v1/namespaces/{ns}/pods",
                    body=objects.build_pod(batch, plan),
                    query={"fieldValidation": "Strict"},
                )
            except ApiError as exc:
                if exc.status != 409:
                    raise
                try:
                    existing = self.api.request("GET", f"/api/v1/namespaces/{ns}/pods/{plan.name}")
                except ApiError as gone:
                    if gone.status == 404:  # deleted in between: try again soon
                        return "retry", f"pod {plan.name} was being deleted", None
                    raise
                if not _owned_by(existing, batch.metadata.uid or ""):
                    return "taken", f"pod {plan.name} belongs to another object", None
                # Ours: an earlier create went through after all.
        except ApiError as exc:
            if exc.status in (400, 422):
                return "refused", exc.message, None
            return "retry", f"{exc.status or 'no response'}: {exc.message}", exc.retry_after
        return "created", "", None

    def _show_create(
        self,
        batch: ResumableBatch,
        current: dict[str, Any] | None,
        decided: ResumableBatchStatus,
        pending: _PendingCreate,
        stamp: str,
    ) -> tuple[ResumableBatchStatus, float | None]:
        """Progressing and the phase of an attempt whose pod creation was refused for now.

        While ``pending.why`` is set the create is being retried: phase Pending,
        Progressing True with reason PodCreateRetrying and the server's message
        (not the delay, which changes every try: the Warning events give it). Once
        created: the Progressing decided for the attempt, phase Running. Written
        only when that changes the status. Returns the status and, after a
        conflicting write, when to look again.
        """
        ns, name = batch.metadata.namespace or "default", batch.metadata.name
        if pending.why:
            reason = cond.REASON_POD_CREATE_RETRYING
            message = (
                f"Cannot create pod {pending.plan.name} yet: {pending.why}; retrying with "
                f"growing delays up to {CREATE_RETRY_MAX_SECONDS:.0f}s "
                f"(attempt {pending.plan.attempt} is kept)."
            )[: v1alpha1.MAX_ERROR_CHARS]
        elif pending.started is not None:
            reason, message = pending.started
        else:
            return decided, None
        status = decided.model_copy(deep=True)
        cond.set_condition(
            status.conditions,
            cond.PROGRESSING,
            "True",
            reason,
            message,
            generation=batch.metadata.generation,
            now=stamp,
        )
        status.phase = derive_phase(status)
        if not self._patch_status(ns, name, current, status):
            return decided, 0.05  # changed meanwhile: decide again from what is there
        return status, None

    def _patch_status(
        self, ns: str, name: str, current: dict[str, Any] | None, status: ResumableBatchStatus
    ) -> bool:
        """Write status over current (as read) with a fenced JSON patch, if it differs.

        Returns False when the batch changed meanwhile (409/422: a test op failed).
        """
        ops = patches.status_patch(current, patches.dump_status(status))
        if not ops:
            return True
        try:
            self.api.request(
                "PATCH", batch_path(ns, name, status=True), body=ops, content_type=JSON_PATCH
            )
        except ApiError as exc:
            if exc.status in (409, 422):
                return False
            raise
        return True

    def _fail_create(
        self,
        batch: ResumableBatch,
        current: dict[str, Any] | None,
        decided: ResumableBatchStatus,
        pending: _PendingCreate,
        message: str,
        stamp: str,
    ) -> tuple[ResumableBatchStatus, float | None]:
        """The API server refused the worker pod as invalid: the batch fails.

        Written with the same fenced status patch as any decision, on top of the
        status just written. Returns the status and when to look again.
        """
        ns, name = batch.metadata.namespace or "default", batch.metadata.name
        msg = f"Cannot create pod {pending.plan.name}: {message}"
        msg = msg[: v1alpha1.MAX_ERROR_CHARS]
        status = decided.model_copy(deep=True)
        gen = batch.metadata.generation
        status.active_pod = ""
        status.retry_after = ""
        status.completion_time = stamp
        status.last_failure = "pod creation refused"
        _set_conditions(
            status,
            cond.REASON_POD_CREATE_FAILED,
            [(cond.FAILED, "True", msg), (cond.SUCCEEDED, "False", "The batch failed."),
             (cond.PROGRESSING, "False", msg)],
            generation=gen, now=stamp,
        )  # fmt: skip
        status.phase = "Failed"
        log.error("%s/%s: %s", ns, name, msg)
        if not self._patch_status(ns, name, current, status):
            return decided, 0.05  # changed meanwhile: decide again from what is there
        self._event(batch, "Warning", cond.REASON_POD_CREATE_FAILED, msg, stamp)
        ttl = batch.spec.ttl_seconds_after_finished
        return status, float(ttl) if ttl is not None else None

    def _record_conditions(self, key: Key, status: ResumableBatchStatus) -> None:
        with self._lock:
            self._conditions[key] = frozenset(
                c.type for c in status.conditions if c.status == "True"
            )
            self._update_phase_gauge()

    def _delete_pod(self, ns: str, name: str, *, graceful: bool) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if not graceful:
            body["gracePeriodSeconds"] = 0  # type: ignore[assignment]
        try:
            self.api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def _ensure_worker_rbac(self, batch: ResumableBatch) -> str:
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
            except ApiError as exc:
                if exc.status != 404:
                    raise
                try:
                    self.api.request("POST", paths[kind], body=obj)
                    continue
                except ApiError as exc:
                    if exc.status != 409:
                        raise
                    return f"{kind} {obj_name} was created by someone else meanwhile"
            owner = _controller_ref(existing)
            if (
                owner is not None
                and owner.get("kind") == v1alpha1.KIND
                and owner.get("name") == batch.metadata.name
                and owner.get("uid") != batch.metadata.uid
            ):
                return (
                    f"{kind} {obj_name} still belongs to an earlier batch named "
                    f"{batch.metadata.name}; waiting for the garbage collector to remove it"
                )
            if (
                kind == "Role"
                and owner is not None
                and owner.get("uid") == batch.metadata.uid
                and existing.get("rules") != obj["rules"]
            ):
                # Ours, from an operator that granted more (0.2 let the worker patch
                # its batch's spec): narrowed before any pod runs with it again.
                self.api.request(
                    "PATCH", url, body={"rules": obj["rules"]}, content_type=MERGE_PATCH
                )
                log.warning("%s/%s: narrowed the worker Role %s", ns, batch.metadata.name, obj_name)
            # Ours, or not made by an earlier batch (nothing deletes it): used as is.
        return ""

    def _event(
        self, batch: ResumableBatch, type_: str, reason: str, message: str, stamp: str
    ) -> None:
        plan = EventPlan(type_, reason, message)  # type: ignore[arg-type]
        try:
            self.api.request(
                "POST",
                f"/api/v1/namespaces/{batch.metadata.namespace}/events",
                body=objects.event_manifest(batch, plan, stamp),
            )
        except ApiError as exc:
            log.warning("cannot record event %s on %s: %s", reason, batch.metadata.name, exc)
        log.info("%s/%s %s: %s", batch.metadata.namespace, batch.metadata.name, reason, message)

    def _update_phase_gauge(self) -> None:
        """Set the per-condition gauge (called with _lock held)."""
        for type_ in cond.ALL_TYPES:
            count = sum(1 for true in self._conditions.values() if type_ in true)
            metrics.BATCHES.labels(condition=type_).set(count)


def _controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    """True when one of the object's ownerReferences names that uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def _set_conditions(
    status: ResumableBatchStatus,
    reason: str,
    rows: list[tuple[str, cond.Status, str]],
    *,
    generation: int | None,
    now: str,
) -> None:
    for type_, value, message in rows:
        cond.set_condition(
            status.conditions, type_, value, reason, message, generation=generation, now=now
        )
