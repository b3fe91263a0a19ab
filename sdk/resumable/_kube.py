"""The SDK's Kubernetes store: the checkpoint lives in the ResumableBatch's status.

Every write is a JSON patch on the status subresource whose ``test`` ops check
the attempt number (the fencing token the operator wrote before it created this
pod) and the position this worker last saved, so an older attempt can never
overwrite newer progress and the position never moves backwards. 429s, 5xx and
timeouts are retried with backoff and jitter. A boundary write is usually one
quick try (:meth:`KubeStore.try_checkpoint`): if the API server is away the run
keeps its pending progress, goes on with its items and tries again later (see
resumable._policy), and waits for a patient write only once its unsaved work
reached the limit. Outputs never go to status: they go to a directory (a
mounted volume).

Every write has a deadline, and no request outlives it. Once the worker is
shutting down (SIGTERM, SIGINT: :meth:`KubeStore.begin_shutdown`), every read and
write ends within FINAL_DEADLINE of that moment, whatever started them, so the
exit fits in the pod's grace period.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from pydantic import ValidationError

from resumable._settings import Settings
from resumable._store import DirectoryOutputs, OutputStore
from resumable.errors import (
    ConfigError,
    CorruptCheckpointError,
    FencedError,
    StoreRefusedError,
    StoreUnavailableError,
)
from resumable.kubeapi import (
    JSON_PATCH,
    ApiError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    KubeApi,
    NotFoundError,
    UnreachableError,
    batch_path,
    call_with_retries,
)
from resumable.v1alpha1 import Checkpoint, ResumableBatchStatus

#: Seconds a patient boundary write keeps retrying: one the run waits for, once its
#: unsaved work reached the limit (resumable._policy.UNSAVED_GRACE_SECONDS).
BOUNDARY_DEADLINE = 5.0
#: Seconds a quick boundary write (:meth:`KubeStore.try_checkpoint`) waits for its one
#: answer: a server that does not answer costs the items this long, not BOUNDARY_DEADLINE.
QUICK_TRY = 1.0
#: Seconds the final write (exit, SIGTERM) keeps retrying; within a pod's grace period.
#: After SIGTERM or SIGINT every write ends within this long of the signal.
FINAL_DEADLINE = 20.0
#: Seconds kept for the last try before a deadline (at most a quarter of the deadline):
#: a backoff that would end later is cut short so that try still gets its answer.
LAST_TRY = 1.0

T = TypeVar("T")


class KubeStore:
    """Checkpoint store on ``resumablebatches/<name>/status``."""

    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.writes = 0
        # (attempt, nextIndex) of checkpoint writes reported failed since the last
        # success: the server may have applied any of them.
        self._unconfirmed: set[tuple[int, int]] = set()
        # The time.monotonic() by which every request must end, once shutting down.
        self._shutdown_at: float | None = None
        #: True while a boundary (non-final) write of the main thread waits on the
        #: API server: the worker's signal handler may then raise into it (and sets
        #: it back to False). Whatever it interrupts, the write counts as one that
        #: may have landed.
        self.interruptible = False
        self._uid = ""

    def describe(self) -> str:
        """The batch, as kubectl names it."""
        return f"resumablebatch {self.namespace}/{self.name}"

    def begin_shutdown(self) -> None:
        """The worker is stopping (SIGTERM, SIGINT): from now on, end within FINAL_DEADLINE.

        Every read and write from here on, and the retries of one already under
        way, end by then, so the exit fits in the grace period whichever exit
        hook makes them. Only the first call counts.
        """
        if self._shutdown_at is None:
            self._shutdown_at = time.monotonic() + FINAL_DEADLINE

    def _until(self, seconds: float) -> float:
        """The deadline of a call allowed ``seconds``, never past the shutdown's."""
        until = time.monotonic() + seconds
        if self._shutdown_at is not None:
            until = min(until, self._shutdown_at)
        return until

    def _retry(self, call: Callable[[], T], until: float) -> T:
        """call_with_retries up to ``until`` (each request must be given it too)."""
        left = until - time.monotonic()
        return call_with_retries(call, deadline=left, last_try=max(0.0, min(LAST_TRY, left / 4)))

    def _refused(self, exc: ApiError, what: str) -> StoreRefusedError:
        return StoreRefusedError(
            f"{self.describe()}: the API server refused {what} ({exc.status}): {exc.message}",
            status=exc.status,
            message=exc.message,
        )

    def _get(self, until: float | None = None) -> dict[str, Any]:
        if until is None:
            until = self._until(FINAL_DEADLINE)
        try:
            # The status subresource returns the whole object; the worker needs no
            # right on the batch itself (docs/security.md).
            path = batch_path(self.namespace, self.name, status=True)
            result: dict[str, Any] = self._retry(
                lambda: self.api.request("GET", path, until=until), until
            )
        except NotFoundError as exc:
            raise ConfigError(f"{self.describe()} does not exist") from exc
        except ApiError as exc:
            if exc.retryable:
                raise StoreUnavailableError(f"{self.describe()}: {exc}") from exc
            raise self._refused(exc, "the read") from exc
        return result

    def load(self, until: float | None = None) -> ResumableBatchStatus | None:
        """The batch's status (None when it has none yet); ``until`` as in KubeApi.request."""
        obj = self._get(until)
        self._uid = str((obj.get("metadata") or {}).get("uid") or "")
        raw = obj.get("status")
        if not raw:
            return None
        try:
            return ResumableBatchStatus.model_validate(raw)
        except ValidationError as exc:
            raise CorruptCheckpointError(f"{self.describe()}: status is not valid: {exc}") from exc

    def incarnation(self) -> str:
        """The batch object's uid (known after the first read): a batch deleted and
        created again under the same name has another one."""
        return self._uid

    def claim(self, attempt: int | None) -> tuple[ResumableBatchStatus, int]:
        """Check this attempt owns the batch (or take the next one when None)."""
        status = self.load() or ResumableBatchStatus()
        stored = status.checkpoint.attempt
        if attempt is None:
            attempt = stored + 1
        if attempt < stored:
            raise FencedError(
                f"{self.describe()}: attempt {attempt} is older than attempt {stored}, "
                "which owns this batch; this worker stops without writing"
            )
        if attempt != stored:
            ops: list[dict[str, Any]] = [
                {"op": "test", "path": "/status/checkpoint/attempt", "value": stored},
                {"op": "replace", "path": "/status/checkpoint/attempt", "value": attempt},
            ]
            if not self._has_checkpoint(status):
                ops = [
                    {"op": "add", "path": "/status", "value": {"checkpoint": {"attempt": attempt}}}
                ]
            self._patch(ops, expect_attempt=stored, expect_next=status.checkpoint.next_index)
            status.checkpoint.attempt = attempt
        return status, attempt

    def _has_checkpoint(self, status: ResumableBatchStatus) -> bool:
        return "checkpoint" in status.model_fields_set

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
        final: bool = False,
    ) -> None:
        """Fenced JSON patch of status.checkpoint and status.progress.

        Retried until BOUNDARY_DEADLINE (FINAL_DEADLINE when ``final``); the API
        server still away then is a StoreUnavailableError.
        """
        self._save(
            checkpoint,
            progress=progress,
            expect_attempt=expect_attempt,
            expect_next=expect_next,
            final=final,
            quick=False,
        )

    def try_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
    ) -> None:
        """A boundary write in one quick try: one request, answered within QUICK_TRY.

        Fenced and refused as :meth:`save_checkpoint` is; a server that refuses
        the connection, answers 429 or 5xx, or does not answer in time is a
        StoreUnavailableError at once, not retried (the run tries again later,
        while its items go on). A try that timed out may have landed: the next
        write knows it (see ``_unconfirmed``).
        """
        self._save(
            checkpoint,
            progress=progress,
            expect_attempt=expect_attempt,
            expect_next=expect_next,
            final=False,
            quick=True,
        )

    def _save(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
        final: bool,
        quick: bool,
    ) -> None:
        value = checkpoint.model_dump(by_alias=True, exclude_none=True, mode="json")
        until = self._until(QUICK_TRY if quick else FINAL_DEADLINE if final else BOUNDARY_DEADLINE)

        def patch(expected_next: int, ours: Collection[tuple[int, int]] = ()) -> int | None:
            ops: list[dict[str, Any]] = [
                {"op": "test", "path": "/status/checkpoint/attempt", "value": expect_attempt},
                {"op": "test", "path": "/status/checkpoint/nextIndex", "value": expected_next},
                {"op": "replace", "path": "/status/checkpoint", "value": value},
                {"op": "add", "path": "/status/progress", "value": progress},
            ]
            return self._patch(
                ops,
                expect_attempt=expect_attempt,
                expect_next=expected_next,
                final=final,
                until=until,
                sent=value,
                ours=ours,
                quick=quick,
            )

        # Earlier writes reported failed, which the server may hold. This write
        # joins them before it is sent, not after it failed: cut short by a
        # signal (see `interruptible`) anywhere from here, it may have landed too.
        ours = frozenset(self._unconfirmed)
        self._unconfirmed.add((checkpoint.attempt, checkpoint.next_index))
        landed = patch(expect_next, ours)
        if landed is not None:
            # A write we were told had failed was applied after all: the
            # position it set is ours, so fence on it instead.
            patch(landed)
        self._unconfirmed.clear()

    def _patch(
        self,
        ops: list[dict[str, Any]],
        *,
        expect_attempt: int,
        expect_next: int,
        final: bool = True,
        until: float | None = None,
        sent: dict[str, Any] | None = None,
        ours: Collection[tuple[int, int]] = (),
        quick: bool = False,
    ) -> int | None:
        """Send ops; retry until ``until`` (``quick``: once), and turn refusals into errors.

        Returns the nextIndex the server holds when the ``test`` op failed on one
        of ``ours``, the (attempt, nextIndex) of earlier writes reported failed
        (nothing was written); None when the patch was applied. A failed ``test``
        op is a FencedError, a missing batch a ConfigError, any other refusal a
        StoreRefusedError; the API server still away at ``until`` (by default
        the write's deadline from now), or after the one try of a ``quick``
        write, is a StoreUnavailableError.
        """
        path = batch_path(self.namespace, self.name, status=True)
        if until is None:
            until = self._until(FINAL_DEADLINE if final else BOUNDARY_DEADLINE)
        tries = 0

        def send() -> Any:
            nonlocal tries
            tries += 1
            try:
                return self.api.request(
                    "PATCH", path, body=ops, content_type=JSON_PATCH, until=until
                )
            except ForbiddenError as exc:
                if not ours:
                    raise
                # Back from an outage (writes failed since the last that landed), a 403
                # is a restarted kube-apiserver whose RBAC caches do not hold the
                # worker's Role yet ("role ... not found"): tried again as if the server
                # were still away. With no write pending it is a refusal, at once.
                raise UnreachableError(0, f"{exc} (just after the API server was away)") from exc

        # A boundary write waiting on the API server gives way to a signal at once
        # (the exit's final write then starts); a final write is never cut short.
        self.interruptible = not final and threading.current_thread() is threading.main_thread()
        try:
            try:
                if quick:
                    send()
                else:
                    self._retry(send, until)
            except ApiError as exc:
                if exc.retryable:
                    raise StoreUnavailableError(f"{self.describe()}: {exc}") from exc
                if isinstance(exc, NotFoundError):
                    raise ConfigError(f"{self.describe()} does not exist") from exc
                if isinstance(exc, ConflictError | InvalidError):  # a test op failed
                    current = self.load(until) or ResumableBatchStatus()
                    if (
                        sent is not None
                        and tries > 1
                        and current.checkpoint == Checkpoint.model_validate(sent)
                    ):
                        # An earlier try was applied but its answer was lost (timeout,
                        # dropped connection): the retry's test op failed on our own write.
                        self.writes += 1
                        return None
                    position = (current.checkpoint.attempt, current.checkpoint.next_index)
                    if position in ours:
                        return position[1]
                    self._explain_refusal(current, expect_attempt, expect_next, exc)
                # Not fencing: RBAC, an expired token, a value the schema rejects.
                raise self._refused(exc, "the checkpoint write") from exc
        finally:
            self.interruptible = False
        self.writes += 1
        return None

    def _explain_refusal(
        self,
        current: ResumableBatchStatus,
        expect_attempt: int,
        expect_next: int,
        exc: ApiError,
    ) -> None:
        """A refused test op: say who owns the batch now."""
        cp = current.checkpoint
        if cp.attempt != expect_attempt:
            raise FencedError(
                f"{self.describe()}: attempt {expect_attempt} was replaced by attempt "
                f"{cp.attempt}; this worker stops without writing"
            ) from exc
        if cp.next_index != expect_next:
            raise FencedError(
                f"{self.describe()}: the position moved to {cp.next_index} (expected "
                f"{expect_next}); this worker stops without writing"
            ) from exc


def open_kube_store(settings: Settings) -> tuple[KubeStore, OutputStore, OutputStore]:
    """The checkpoint store and the output and step stores for a worker in a cluster."""
    if not settings.namespace:
        raise ConfigError("RESUMABLE_NAMESPACE must be set to use the Kubernetes store")
    api = KubeApi.from_environment()
    store = KubeStore(api, settings.namespace, settings.batch_name)
    root = settings.output_dir or settings.directory
    outputs = DirectoryOutputs(root / "outputs")
    steps = DirectoryOutputs(root / "steps")
    os.makedirs(root, exist_ok=True)
    return store, outputs, steps
