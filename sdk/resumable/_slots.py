"""A parallel worker's checkpoint store: its slot of the batch, and the chunks it claims.

With ``spec.parallelism`` > 1 the operator (or ``resumable run``) starts one worker
per slot and tells it its slot (``RESUMABLE_WORKER_SLOT``) and its slot's attempt
(``RESUMABLE_ATTEMPT``). :class:`SlotStore` wraps the batch's store so that
:class:`resumable._run.Run` works unchanged: the run's checkpoint holds only the
items this worker completed, and the store writes them into its slot (the
protocol is :mod:`resumable.claims`). ``Run.items()`` asks :meth:`SlotStore.claim_chunk`
for each next chunk, in the same write that folds what the worker completed.

Two backends make each step atomic: :class:`LocalSlots` under the local store's
file lock, :class:`KubeSlots` as a JSON patch on the status subresource, fenced
by the slot's attempt (every write) and by the checkpoint as read (a claim, which
reads what other workers hold, and bumps ``checkpoint.claims``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from resumable import claims
from resumable.errors import (
    CorruptCheckpointError,
    FencedError,
    FingerprintMismatchError,
    StoreUnavailableError,
)
from resumable.ranges import IndexSet
from resumable.v1alpha1 import Checkpoint, ResumableBatchStatus, WorkerSlot

T = TypeVar("T")

#: Seconds a claim keeps trying when other workers' writes keep winning the race.
CLAIM_DEADLINE = 20.0
#: A claim that lost the race waits a random time up to this, doubled at each loss
#: in a row up to CLAIM_BACKOFF_MAX: many workers claiming at once spread out
#: instead of sending the API server refused writes in a tight loop.
CLAIM_BACKOFF_BASE = 0.02
CLAIM_BACKOFF_MAX = 0.5


class SlotBackend(Protocol):
    """Reads and atomically changes the batch's status for one worker."""

    interruptible: bool

    def describe(self) -> str:
        """The batch, for messages."""

    def incarnation(self) -> str:
        """The batch's id (a uid, a local store's id) once read."""

    def read(self) -> ResumableBatchStatus:
        """The status as stored now."""

    def update(
        self,
        slot: int,
        change: Callable[[ResumableBatchStatus], T],
        *,
        exclusive: bool,
        final: bool,
        quick: bool,
    ) -> T:
        """Apply ``change`` to the status and store the result atomically.

        ``exclusive``: nothing else may have changed the status in between (a
        claim); otherwise only the slot's own entry (and progress) is written.
        """


class SlotStore:
    """The checkpoint store a parallel worker's Run uses (see the module docstring)."""

    def __init__(
        self,
        backend: SlotBackend,
        *,
        slot: int,
        parallelism: int,
        chunk_size: int | None,
    ) -> None:
        self.backend = backend
        self.slot = slot
        self.parallelism = parallelism
        self.chunk_size = chunk_size
        self.attempt = 0
        # What of the run's checkpoint is folded into the batch's already.
        self._folded = IndexSet()
        self._folded_tokens = 0
        self._folded_cost = 0.0

    @property
    def interruptible(self) -> bool:
        """See KubeStore.interruptible."""
        return self.backend.interruptible

    @interruptible.setter
    def interruptible(self, value: bool) -> None:
        self.backend.interruptible = value

    def describe(self) -> str:
        """The batch and the slot."""
        return f"{self.backend.describe()} (worker slot {self.slot})"

    def incarnation(self) -> str:
        """The batch's id, for the step results' scope."""
        return self.backend.incarnation()

    def begin_shutdown(self) -> None:
        """Pass the worker's shutdown to the backend (its deadlines shorten)."""
        begin = getattr(self.backend, "begin_shutdown", None)
        if callable(begin):
            begin()

    def load(self) -> ResumableBatchStatus | None:
        """The batch's status as stored now."""
        return self.backend.read()

    def claim(self, attempt: int | None) -> tuple[ResumableBatchStatus, int]:
        """Check the slot belongs to ``attempt``; the run starts with nothing of its own.

        The checkpoint handed to the run carries the batch's item count and list
        fingerprint, and no completed items: the chunks it claims hold none.
        """
        if attempt is None:
            raise FencedError(
                f"{self.describe()}: RESUMABLE_ATTEMPT is not set; a parallel worker runs "
                "only as the operator or `resumable run` starts it"
            )
        status = self.backend.read()
        entry = claims.slot_of(status, self.slot, attempt, self.describe())
        self.attempt = attempt
        if entry.done or entry.tokens or entry.cost_usd or entry.claim:
            # What the slot's earlier attempt committed: fold it in now, so this
            # attempt's writes of the slot's ``done`` hold only its own items.
            def adopt(status: ResumableBatchStatus) -> None:
                mine = claims.slot_of(status, self.slot, attempt, self.describe())
                claims.fold(status, mine)
                mine.claim = ""

            self.backend.update(self.slot, adopt, exclusive=True, final=False, quick=False)
        cp = status.checkpoint
        view = ResumableBatchStatus(
            checkpoint=Checkpoint(
                attempt=attempt,
                total_items=cp.total_items,
                fingerprint=cp.fingerprint,
            )
        )
        return view, attempt

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
        final: bool = False,
    ) -> None:
        """Write what the worker completed since its last claim into its slot."""
        del progress, expect_next  # the slot's progress is the batch's, counted here
        self._record(checkpoint, expect_attempt, final=final, quick=False)

    def try_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
    ) -> None:
        """The quick boundary write (one try) of :meth:`save_checkpoint`."""
        del progress, expect_next
        self._record(checkpoint, expect_attempt, final=False, quick=True)

    def _record(self, checkpoint: Checkpoint, attempt: int, *, final: bool, quick: bool) -> None:
        done = IndexSet.parse(checkpoint.completed).difference(self._folded)
        tokens = checkpoint.tokens - self._folded_tokens
        cost = max(0.0, checkpoint.cost_usd - self._folded_cost)

        def change(status: ResumableBatchStatus) -> None:
            claims.record(
                status,
                self.slot,
                attempt,
                done=done,
                tokens=tokens,
                cost_usd=cost,
                inflight=checkpoint.inflight,
                what=self.describe(),
            )

        self.backend.update(self.slot, change, exclusive=False, final=final, quick=quick)

    def claim_chunk(self, checkpoint: Checkpoint, total: int) -> tuple[int, int] | None:
        """Fold what the worker completed and claim its next chunk (None: none left).

        One write; retried while other workers' writes win the race for the
        object, until CLAIM_DEADLINE. A changed item list is refused here, as the
        first worker to claim recorded its fingerprint.
        """
        completed = IndexSet.parse(checkpoint.completed)
        size = self.chunk_size or claims.default_chunk_size(total, self.parallelism)
        # The slot as first read, and as the last try wrote it: a try can land with
        # its answer lost (the retry is then refused, as the checkpoint moved).
        read: WorkerSlot | None = None
        wrote: WorkerSlot | None = None

        def change(status: ResumableBatchStatus) -> tuple[int, int] | None:
            nonlocal read, wrote
            entry = claims.slot_of(status, self.slot, self.attempt, self.describe())
            if read is None:
                read = entry.model_copy()
            elif wrote is not None and entry == wrote and entry != read:
                # The last try landed: folding again would count its usage twice
                # (items are a set; tokens and cost a sum). Keep what it claimed.
                return claims.held(entry)
            entry.done = str(completed.difference(self._folded))
            entry.tokens = checkpoint.tokens - self._folded_tokens
            entry.cost_usd = round(max(0.0, checkpoint.cost_usd - self._folded_cost), 6)
            stored = status.checkpoint.fingerprint
            if checkpoint.fingerprint:
                if stored and stored != checkpoint.fingerprint:
                    raise FingerprintMismatchError(
                        f"{self.describe()}: the item list differs from the one the other "
                        f"workers of this run use (fingerprint {stored}, this worker's "
                        f"{checkpoint.fingerprint}): every worker must be given the same list"
                    )
                status.checkpoint.fingerprint = checkpoint.fingerprint
            chunk = claims.claim_next(
                status, self.slot, self.attempt, total=total, size=size, what=self.describe()
            )
            wrote = entry.model_copy()
            return chunk

        chunk = self.backend.update(self.slot, change, exclusive=True, final=False, quick=False)
        self._folded = completed
        self._folded_tokens = checkpoint.tokens
        self._folded_cost = checkpoint.cost_usd
        return chunk


class LocalSlots:
    """The local store's status.json, changed under its file lock."""

    interruptible = False

    def __init__(self, store: Any) -> None:
        self.store = store

    def describe(self) -> str:
        """The status file."""
        return str(self.store.describe())

    def incarnation(self) -> str:
        """The local store's id (read with the status)."""
        return str(self.store.incarnation())

    def read(self) -> ResumableBatchStatus:
        """The status as stored now (under the lock)."""
        with self.store.locked():
            self.store._claim_incarnation(fresh=False)
            return self.store.load() or ResumableBatchStatus()

    def update(
        self,
        slot: int,
        change: Callable[[ResumableBatchStatus], T],
        *,
        exclusive: bool,
        final: bool,
        quick: bool,
    ) -> T:
        """Read, change and write status.json under the lock."""
        del slot, exclusive, final, quick
        with self.store.locked():
            status = self.store.load() or ResumableBatchStatus()
            result = change(status)
            status.progress = _progress(status)
            self.store.write_status(status)
            return result


class KubeSlots:
    """The batch's status subresource, changed by fenced JSON patches."""

    def __init__(
        self,
        store: Any,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float], float] = lambda longest: random.uniform(0, longest),
    ) -> None:
        self.store = store  # a resumable._kube.KubeStore: its API client and deadlines
        self._sleep = sleep
        self._jitter = jitter  # a lost claim's wait, given the longest allowed
        self._last: dict[str, Any] | None = None  # the object as last read or written

    @property
    def interruptible(self) -> bool:
        """See KubeStore.interruptible."""
        return bool(self.store.interruptible)

    @interruptible.setter
    def interruptible(self, value: bool) -> None:
        self.store.interruptible = value

    def describe(self) -> str:
        """The batch, as kubectl names it."""
        return str(self.store.describe())

    def incarnation(self) -> str:
        """The batch's uid."""
        return str(self.store.incarnation())

    def begin_shutdown(self) -> None:
        """From now on every request ends within the store's final deadline."""
        self.store.begin_shutdown()

    def read(self) -> ResumableBatchStatus:
        """GET the status subresource."""
        return _status_of(self._fetch(), self.describe())

    def _fetch(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.store._get()
        self.store._uid = str((obj.get("metadata") or {}).get("uid") or "")
        self._last = obj
        return obj

    def update(
        self,
        slot: int,
        change: Callable[[ResumableBatchStatus], T],
        *,
        exclusive: bool,
        final: bool,
        quick: bool,
    ) -> T:
        """One fenced patch: the slot's attempt always, the resourceVersion if exclusive.

        A progress write patches only the slot's entry, so
        it never races other workers; a claim re-reads and tries again while their
        writes win, and a failed attempt test is a FencedError.
        """
        from resumable._kube import BOUNDARY_DEADLINE, FINAL_DEADLINE, QUICK_TRY
        from resumable.kubeapi import JSON_PATCH, ApiError, ConflictError, InvalidError

        deadline = CLAIM_DEADLINE if exclusive else FINAL_DEADLINE if final else BOUNDARY_DEADLINE
        until = self.store._until(QUICK_TRY if quick else deadline)
        path = _status_path(self.store)
        lost = 0  # claims refused in a row
        while True:
            obj = self._last if self._last is not None and not exclusive else self._fetch()
            status = _status_of(obj, self.describe())
            attempt_before = status.workers[slot].attempt if slot < len(status.workers) else -1
            result = change(status)
            status.progress = _progress(status)
            ops = _ops(obj, status, slot, attempt_before, exclusive=exclusive)

            def send(ops: list[dict[str, Any]] = ops) -> Any:
                return self.store.api.request(
                    "PATCH", path, body=ops, content_type=JSON_PATCH, until=until
                )

            try:
                answer = send() if quick else self.store._retry(send, until)
            except ApiError as exc:
                if exc.retryable:
                    raise StoreUnavailableError(f"{self.describe()}: {exc}") from exc
                if not isinstance(exc, ConflictError | InvalidError):
                    raise self.store._refused(exc, "the worker's write") from exc
                # A test op failed: the slot was taken over (FencedError from the
                # change on the fresh read), or another worker wrote first.
                self._last = None
                if not exclusive:
                    change(self.read())  # raises FencedError when the attempt moved
                    continue
                if time.monotonic() >= until:
                    raise StoreUnavailableError(
                        f"{self.describe()}: could not claim a chunk: other workers' writes "
                        f"kept winning for {deadline:.0f} s"
                    ) from exc
                self._sleep(self._jitter(claim_backoff(lost)))
                lost += 1
                continue
            self._last = answer if isinstance(answer, dict) else None
            self.store.writes += 1
            return result


def claim_backoff(lost: int) -> float:
    """The longest wait before a claim's next try, after ``lost`` refusals in a row."""
    return min(CLAIM_BACKOFF_MAX, CLAIM_BACKOFF_BASE * 2.0 ** min(lost, 16))


def _status_path(store: Any) -> str:
    from resumable.kubeapi import batch_path

    return batch_path(store.namespace, store.name, status=True)


def _status_of(obj: dict[str, Any], what: str) -> ResumableBatchStatus:
    raw = obj.get("status") or {}
    try:
        return ResumableBatchStatus.model_validate(raw)
    except ValidationError as exc:
        raise CorruptCheckpointError(f"{what}: status is not valid: {exc}") from exc


def _dump(value: Any) -> Any:
    return value.model_dump(by_alias=True, exclude_none=True, mode="json")


def _ops(
    obj: dict[str, Any],
    status: ResumableBatchStatus,
    slot: int,
    attempt: int,
    *,
    exclusive: bool,
) -> list[dict[str, Any]]:
    """The JSON patch writing the slot's entry (and, for a claim, the checkpoint)."""
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"/status/workers/{slot}/attempt", "value": attempt},
    ]
    if exclusive:
        # The claim (or a new attempt's fold) rests on the checkpoint and the slots'
        # claims as read. Every claim changes the checkpoint (checkpoint.claims), so
        # testing it as read refuses this write after any other claim or fold, and
        # not after the other workers' progress writes, which touch only their own
        # slots. (A slot released in between only returns items this claim left.)
        read = (obj.get("status") or {}).get("checkpoint")
        if read is None:
            version = (obj.get("metadata") or {}).get("resourceVersion")
            ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": version})
        else:
            ops.insert(0, {"op": "test", "path": "/status/checkpoint", "value": read})
        checkpoint = _dump(status.checkpoint)
        ops.append({"op": "replace", "path": "/status/checkpoint", "value": checkpoint})
    entry = _dump(status.workers[slot])
    ops.append({"op": "replace", "path": f"/status/workers/{slot}", "value": entry})
    if exclusive:
        # Counted at each claim, in claim order: the column never moves back, as
        # it could from a progress write that read earlier.
        ops.append({"op": "add", "path": "/status/progress", "value": status.progress})
    return ops


def _progress(status: ResumableBatchStatus) -> str:
    done = claims.progress_count(status)
    total = status.checkpoint.total_items
    return f"{done}/{total}" if total is not None else str(done)
