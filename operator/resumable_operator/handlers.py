"""kopf registrations, kept thin: every handler only feeds the controller's queue.

Watched: ResumableBatch events (every change, but a reconcile is queued only for
spec changes, first sight and completion; checkpoint writes by workers only feed
metrics, so they cost no extra API writes) and events of pods carrying the
``resumable.dev/batch`` label (and, with RESUMABLE_OPERATOR_KUEUE on, of the
Kueue Workloads the operator made for batches). Progress storage, diff-base and finalizer names are
set explicitly under our own prefix, though these handlers use none of them.
``kopf run -m resumable_operator.handlers`` works too; it takes namespaces,
liveness and logging from kopf's own flags, where ``resumable-operator`` reads them
from RESUMABLE_OPERATOR_* variables (see main.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import kopf

from resumable import v1alpha1
from resumable.constants import LABEL_BATCH
from resumable.kubeapi import KubeApi
from resumable_core import kueue
from resumable_operator.config import ANNOTATION_PREFIX, FINALIZER, OperatorConfig, kueue_enabled
from resumable_operator.controller import Controller
from resumable_operator.leader import LeaderElector
from resumable_operator.metrics import Metrics


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf, start /metrics and the reconcile workers."""
    config = OperatorConfig.from_env()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    if config.namespaces:
        # Listed namespaces need no namespace scanning (and no permission to list them).
        settings.scanning.disabled = True
    metrics = Metrics()
    metrics.serve(config.metrics_port)
    api = KubeApi.from_environment()
    controller = Controller(api, workers=config.workers, metrics=metrics, kueue=config.kueue)
    memo["controller"] = controller
    if not config.leader_election:
        controller.start()
        return
    elector = LeaderElector(
        api,
        namespace=config.lease_namespace,
        name=config.lease_name,
        identity=config.identity,
        lease_seconds=config.lease_seconds,
    )

    async def lost() -> None:
        # Stop acting at once (a reconcile still running writes nothing more), then
        # let the process end: the pod restarts as a standby, with no timers or
        # half-done state from its time as leader. A standby may take over a third
        # of the lease after this: wait at most half of that for running reconciles.
        await controller.stop(wait=config.lease_seconds / 6)
        os.kill(os.getpid(), signal.SIGTERM)

    memo["elector"] = elector
    memo["election"] = asyncio.create_task(elector.run(controller.start, lost), name="election")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the workers; a leader gives its Lease up so a standby takes over at once."""
    election: asyncio.Task[None] | None = memo.get("election")
    if election is not None:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
    elector: LeaderElector | None = memo.get("elector")
    if elector is not None:
        await asyncio.to_thread(elector.release)


# The event handlers are coroutines on purpose: kopf runs plain functions in a
# thread pool, and the controller's queue belongs to the event loop. They do no I/O.


@kopf.on.event(v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL)
async def batch_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A batch changed: let the controller decide whether to reconcile."""
    controller: Controller = memo["controller"]
    controller.observe_batch(event.get("type"), dict(body))


@kopf.on.event("", "v1", "pods", labels={LABEL_BATCH: kopf.PRESENT})
async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A worker pod changed: let the controller decide whether to reconcile its batch."""
    controller: Controller = memo["controller"]
    controller.observe_pod(event.get("type"), dict(body))


if kueue_enabled():

    @kopf.on.event(kueue.GROUP, kueue.VERSION, "workloads", labels={LABEL_BATCH: kopf.PRESENT})
    async def workload_event(
        event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        """A batch's Workload changed (admitted, evicted): reconcile the batch."""
        controller: Controller = memo["controller"]
        controller.observe_workload(event.get("type"), dict(body))
