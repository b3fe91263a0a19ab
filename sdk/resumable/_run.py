"""The worker-side loop: yield only unfinished items, commit each after success, checkpoint.

A :class:`Run` owns one attempt at a batch. It reads the saved checkpoint once at
start, yields the items not done yet, records each item after its block succeeds
(output first, then the position), writes checkpoints as the policy allows, and
always flushes on a clean exit, an exception, SIGTERM, SIGINT and interpreter
exit. Created by :func:`resumable.start`; the public names are re-exported there.

While the store is away, items go on: a failed boundary write is tried again
later (resumable._policy's retry schedule), and only once writes have failed for
UNSAVED_GRACE_SECONDS does the run wait for one to land before the next item.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any, Generic, Literal, TypeVar

from resumable import constants as names
from resumable._policy import Coalescer
from resumable._settings import Settings
from resumable._store import CheckpointStore, OutputStore
from resumable.errors import (
    CorruptCheckpointError,
    FencedError,
    FingerprintMismatchError,
    ResumableError,
    StoreUnavailableError,
    UsageError,
)
from resumable.ranges import IndexSet
from resumable.v1alpha1 import MAX_COMPLETED_CHARS, MAX_CONTEXT_BYTES, MAX_ERROR_CHARS, Checkpoint

T = TypeVar("T")
R = TypeVar("R")

_UNSET: Any = object()


class Terminated(SystemExit):
    """Raised in the worker when SIGTERM or SIGINT arrives; exits with 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


#: What CPython's default repr() shows for an object without one of its own.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


#: Types whose hash, and so their order in a set, is the same in every process.
_HASH_STABLE = (int, float, bool, type(None))


class _UnstableValueError(Exception):
    """A value with no form that stays the same from one process to the next."""


def _stable_form(value: Any) -> Any:
    """JSON's fallback for fingerprints: a form that is the same in every process.

    Sets of strings and the like are sorted (their order follows string hashing,
    which differs per process); sets of numbers keep the repr they always had, whose
    order is the same in every process, so their fingerprints stay what earlier
    versions saved. Other objects are taken by repr(), unless it is the default
    one, whose memory address would make every restart look like a changed list
    (searched anywhere in the text: the object may sit inside another's repr).
    """
    if isinstance(value, (set, frozenset)) and not all(type(v) in _HASH_STABLE for v in value):
        return sorted(value, key=lambda v: json.dumps(v, sort_keys=True, default=_stable_form))
    text = repr(value)
    if _ADDRESS.search(text):
        raise _UnstableValueError(type(value).__qualname__)
    return text


def fingerprint(values: Iterable[Any]) -> str:
    """A short, stable fingerprint of an item list: its length and a hash of its JSON.

    Raises ResumableError for an item that has no stable form (an object with the
    default repr, which holds its memory address), naming its number and type.
    """
    digest = hashlib.sha256()
    count = 0
    for value in values:
        try:
            encoded = json.dumps(value, sort_keys=True, default=_stable_form)
        except _UnstableValueError as exc:
            raise UsageError(
                f"item {count + 1} (or a value inside it, of type {exc}) cannot be "
                "fingerprinted: its repr() holds a memory address, so every restart would "
                "see a changed item list. Give the class a __repr__ (a dataclass has one), "
                "pass plain values (dicts, strings, numbers), or use "
                "run.items(..., fingerprint_items=False)"
            ) from None
        digest.update(encoded.encode())
        digest.update(b"\n")
        count += 1
    return f"{count}:{digest.hexdigest()[:16]}"


_stamp_cache: tuple[int, str] = (-1, "")


def _now_rfc3339() -> str:
    """The current UTC time, second precision (formatted once per second)."""
    global _stamp_cache
    second = int(time.time())
    if _stamp_cache[0] != second:
        moment = datetime.fromtimestamp(second, UTC)
        _stamp_cache = (second, moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp_cache[1]


@dataclass
class Summary:
    """Counts and usage of a run, for reports.

    For a parallel worker (spec.parallelism > 1) they are this worker's, and
    ``finished`` means the pool had no chunk left for it.
    """

    total: int | None
    done: int
    skipped: int
    failed: int
    tokens: int
    cost_usd: float
    attempt: int
    resumed_from: int
    finished: bool


#: The JSON types whose values need no walk to check (a float still must be finite).
_PLAIN = (str, int, bool, type(None))


def json_value(value: Any, what: str) -> None:
    """Raise unless value is JSON, as the SDK stores it: ``what`` names it in the message.

    TypeError for a value JSON has no type for (a set, an object, bytes), ValueError
    for NaN or Infinity (json.dumps would write them as bare words no JSON reader
    takes) and for a value that contains itself. Called where the value is set, so
    the traceback points at the user's line.
    """
    kind = type(value)
    if kind in _PLAIN or (kind is float and math.isfinite(value)):
        return
    try:
        json.dumps(value, allow_nan=False)
    except TypeError as exc:  # "Object of type set is not JSON serializable"
        # "not dict" would mislead for a dict holding a set: the reason names the type.
        not_this = "" if kind in (dict, list) else f", not {kind.__name__}"
        raise TypeError(
            f"{what} must be JSON (dict, list, str, number, bool, None){not_this}: {exc}"
        ) from None
    except ValueError as exc:
        why = exc if "ircular" in str(exc) else "NaN, Infinity and -Infinity are not JSON"
        raise ValueError(f"{what} must be JSON: {why}") from None


class _Context(dict[str, Any]):
    """run.context: a dict that takes JSON values only, checked as each key is set."""

    def __setitem__(self, key: str, value: Any) -> None:
        json_value(value, f"run.context[{key!r}]")
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """As dict.update, each value checked before any is set."""
        pairs = dict(*args, **kwargs)
        for key, value in pairs.items():
            json_value(value, f"run.context[{key!r}]")
        super().update(pairs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """As dict.setdefault, the default checked when it is set."""
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> _Context:  # type: ignore[override,misc]
        self.update(other)
        return self


def _step_name(name: str) -> str:
    """A step name, checked: it becomes part of a file name."""
    if not name or "/" in name or "\0" in name:
        raise ValueError(f"step name {name!r}: must be non-empty, without '/'")
    return name


class Item(Generic[T]):
    """One unit of work. Use as ``with item:``; the block's success commits it."""

    __slots__ = (
        "_closed",
        "_entered",
        "_output",
        "_run",
        "_steps_done",
        "cost_usd",
        "index",
        "tokens",
        "value",
    )

    def __init__(self, run: Run, index: int, value: T) -> None:
        self.index = index
        self.value = value
        self._output: Any = None
        self.tokens = 0
        self.cost_usd = 0.0
        self._run = run
        self._entered = False
        self._closed = False
        self._steps_done: set[str] | None = None

    @property
    def output(self) -> Any:
        """The item's result, stored when it commits: a JSON value (None stores nothing).

        Setting one JSON cannot hold (a set, an object, NaN) raises TypeError or
        ValueError here, naming the item.
        """
        return self._output

    @output.setter
    def output(self, value: Any) -> None:
        json_value(value, f"item {self.index + 1}'s output")
        self._output = value

    @property
    def key(self) -> str:
        """A stable idempotency key for side effects: batch identity plus item index."""
        return f"{self._run._identity}/{self.index}"

    @property
    def number(self) -> int:
        """The 1-based item number people read in messages."""
        return self.index + 1

    def add_usage(self, *, tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Record tokens and cost spent on this item; counted when it commits.

        ``tokens`` is a whole number and ``cost_usd`` a finite one, both >= 0: a
        checkpoint holding 5228.75 tokens or a NaN cost could not be read back.
        """
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise TypeError(f"add_usage(tokens=...) must be an int, got {tokens!r}")
        if isinstance(cost_usd, bool) or not isinstance(cost_usd, (int, float)):
            raise TypeError(f"add_usage(cost_usd=...) must be a number, got {cost_usd!r}")
        if tokens < 0 or not math.isfinite(cost_usd) or cost_usd < 0:
            raise ValueError(
                f"usage must be finite and not negative (tokens={tokens}, cost_usd={cost_usd})"
            )
        self.tokens += tokens
        self.cost_usd += cost_usd

    def step(self, name: str, fn: Callable[[], R]) -> R:
        """Run a named step once: a step saved by an earlier attempt returns its result.

        The result is stored as JSON and returned as stored, on every attempt
        alike (a dict's int keys come back as strings). A name may be used once per
        item: a second step of the same name would only return the first's result,
        so it raises ValueError (a step that raised may be tried again).
        """
        done = self._steps_done
        if done is not None and name in done:
            raise ValueError(
                f"item {self.number}: step {name!r} was already run in this item and would "
                "return its first result again; give each step of an item its own name"
            )
        result = self._run._step(f"{self.index}-{_step_name(name)}", fn)
        if done is None:
            self._steps_done = done = set()
        done.add(name)
        return result

    def __enter__(self) -> Item[T]:
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._closed = True
        if exc is None:
            self._run._commit(self)
            return False
        if not isinstance(exc, Exception) or isinstance(exc, UsageError):
            # Exits, interrupts, task cancellation (asyncio.CancelledError), misuse
            # that fails every item alike: not the item's fault, so neither recorded
            # against it nor swallowed.
            return False
        self._run._record_error(self, exc)
        return self._run._errors == "continue"


class Run:
    """One attempt at a batch: the saved position, the store and the checkpoint policy."""

    def __init__(
        self,
        settings: Settings,
        checkpoints: CheckpointStore,
        outputs: OutputStore,
        steps: OutputStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._context = _Context()
        self._store = checkpoints
        self._outputs = outputs
        self._steps = steps
        # Time and chance, injected: the clock of the policy, the pause between
        # tries while the run waits for the store, the jitter of the retry gaps.
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        # True while the main thread pauses between tries at the unsaved-work
        # limit: a signal then ends the wait at once (see _on_signal).
        self._waiting = False
        # everySeconds not set: the default for the store (a cluster's is longer).
        self._coalescer = Coalescer(settings.policy.resolved(settings.store), last_write=clock())
        self._lock = threading.RLock()
        self._critical = 0
        self._deferred_signal: int | None = None
        self._fenced = False
        self._closed = False
        self._errors: Literal["raise", "continue"] = "raise"
        parts = [settings.namespace or "local", settings.batch_name]
        if settings.run_id:
            parts.append(settings.run_id)
        self._identity = "/".join(parts)
        self._failed: set[int] = set()
        self._old_handlers: dict[int, Any] = {}

        status, attempt = checkpoints.claim(settings.attempt)
        self.attempt = attempt
        # A parallel worker (spec.parallelism > 1): its store hands out the chunks it
        # works on (resumable._slots); its checkpoint holds only what it completed.
        self._claim_chunk: Callable[[Checkpoint, int], tuple[int, int] | None] | None = getattr(
            checkpoints, "claim_chunk", None
        )
        # Step results are kept under the batch's incarnation (a store's id for this
        # batch: a Kubernetes uid, a local store's random id) and its runId, so a batch
        # created again under the same name, or rerun, never gets another one's results
        # from an output volume that outlived it. "-" where there is none: no runId
        # or incarnation contains one alone.
        incarnation = getattr(checkpoints, "incarnation", None)
        scope = incarnation() if callable(incarnation) else ""
        self._step_scope = f"{scope or '-'}~{settings.run_id or '-'}"
        cp = status.checkpoint
        self._fresh = cp.finished
        if cp.finished:
            cp = Checkpoint(attempt=attempt)
        self._checkpoint = cp
        self._tokens = cp.tokens
        self._cost_usd = cp.cost_usd
        self._saved_next = status.checkpoint.next_index
        self._skipped = {s.index for s in status.skipped}
        self._start = 0 if self._claim_chunk else settings.start_index or 0
        try:  # fields the schema lets through but this run cannot use
            self._completed = IndexSet() if cp.finished else IndexSet.parse(cp.completed)
            self.context = dict(cp.context.get("user", {})) if cp.context else {}
            self._iteration = int(cp.context.get("iteration", 0)) if cp.context else 0
            redone_saved = int(cp.context.get("redone", 0)) if cp.context else 0
        except (TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"{checkpoints.describe()}: not a usable checkpoint: {exc}"
            ) from exc
        # Outputs kept in status (spec.outputs.status) go with every checkpoint write.
        self._inline: Callable[[], dict[str, Any]] | None = getattr(outputs, "snapshot", None)
        if self._inline is not None:
            outputs.load(cp.outputs)  # type: ignore[attr-defined]
        self._total: int | None = settings.total_items or cp.total_items
        self._fingerprint = cp.fingerprint
        self.resumed_from = self._next_index()
        policy = settings.policy
        # With a durable write after every item the saved position is always exact,
        # so the in-flight marker (one small write per item) would add nothing.
        self._exact = policy.every_items == 1 and policy.min_interval_seconds == 0
        mark = getattr(outputs, "mark_inflight", None)
        # Parallel workers may share one output directory: no shared marker file.
        exact = self._exact or self._claim_chunk is not None
        self._mark: Callable[[int], None] | None = None if exact else mark
        self._careful_until = self._careful_window()
        self._inflight: int | None = None
        self.redone = 0
        redo_from = getattr(outputs, "read_inflight", lambda: None)()
        if redo_from is not None and not self._fresh:
            self.redone = sum(1 for i in range(self.resumed_from, redo_from) if not self.is_done(i))
        self._redone_total = redone_saved + self.redone
        # When this attempt began and what was done then: the checkpoint carries
        # them, so a status read once shows the attempt's rate.
        self._began = _now_rfc3339()
        self._done_at_start = len(self._completed)
        live = getattr(checkpoints, "live_progress", None)
        self._live = live(attempt=attempt, done=self._done_at_start) if live else None
        if settings.handle_signals:
            self._install_signal_handlers()
        atexit.register(self._atexit)
        _live_runs.add(self)

    # ------------------------------------------------------------------ public

    @property
    def context(self) -> dict[str, Any]:
        """User state saved with every checkpoint: JSON values only, under string keys.

        Setting a value JSON cannot hold (a set, an object, NaN) raises TypeError or
        ValueError where it is set, naming the key.
        """
        return self._context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        context = _Context()
        context.update(value)
        self._context = context

    @property
    def identity(self) -> str:
        """The batch identity used in idempotency keys: namespace/name[/runId]."""
        return self._identity

    @property
    def next_index(self) -> int:
        """The first item index not done yet."""
        return self._next_index()

    def is_done(self, index: int) -> bool:
        """True when the item was completed or skipped in this run of the batch."""
        return index in self._completed or index in self._skipped or index < self._start

    def items(
        self,
        values: Iterable[T],
        *,
        fingerprint_items: bool = True,
        errors: Literal["raise", "continue"] = "raise",
    ) -> Iterator[Item[T]]:
        """Yield the items not done yet, in order, from the saved position.

        ``values`` must be finite and the same on every attempt: it is read into a
        list and fingerprinted. An item used as ``with item:`` is committed when its
        block succeeds; an item not used that way is committed when the loop moves
        on to the next one (an exception in the loop commits nothing).

        ``errors="raise"`` (the default) records a failing item's error, saves, and
        re-raises so the worker stops and is restarted; ``"continue"`` records it
        and goes on, leaving the item to a later attempt.
        """
        self._errors = errors
        listed = list(values)
        total = len(listed)
        expected = self.settings.total_items
        if expected is not None and expected != total:
            # Progress would read "150/200" at the end of a batch that did all it was given.
            print(
                f"resumable: {expected} items expected (spec.totalItems, RESUMABLE_TOTAL_ITEMS) "
                f"but items() was given {total}; the batch ends after these {total}",
                file=sys.stderr,
            )
        if fingerprint_items:
            self._check_fingerprint(fingerprint(listed))
        self._total = total
        if self._live is not None:
            self._live.update(len(self._completed), total)
        completed, skipped, mark = self._completed, self._skipped, self._mark
        unwinding = False
        try:
            for index in self._indices(total):
                if index in completed or index in skipped:
                    continue
                item: Item[T] = Item(self, index, listed[index])
                if mark is not None:
                    mark(index)
                if self._careful_until is not None and index <= self._careful_until:
                    self._inflight = index
                    self._flush(final=False)  # careful mode: say which item we are on
                yield item
                if not item._entered and not item._closed:
                    self._commit(item)  # the loop moved on without an exception
            self._finish()
        except BaseException:
            # `break` (GeneratorExit), or an exception on its way out (Terminated
            # from a SIGTERM during a write in here): a failed save below must not
            # replace it.
            unwinding = True
            raise
        finally:
            # Save what is pending, but keep the run usable (a `break` followed by
            # another loop) and the exit and signal flushes armed until close().
            if not unwinding:
                self._flush_at_exit()
            else:
                try:
                    self._flush_at_exit()
                except ResumableError as exc:
                    # Raised while the generator closes, Python would only print it
                    # as "Exception ignored" with a traceback: say it in one line.
                    why = f"{type(exc).__name__}: {exc}"
                    print(
                        f"resumable: progress not saved as the loop ended: {why}", file=sys.stderr
                    )

    def _indices(self, total: int) -> Iterator[int]:
        """The item indices this worker works on: from the saved position, or the
        chunks it claims one after another when it is one of parallel workers."""
        claim_chunk = self._claim_chunk
        if claim_chunk is None:
            yield from range(self._start, total)
            return
        while not self._fenced:
            with self._guard():
                chunk = self._claim(claim_chunk, total)
                self._coalescer.written(self._clock())
            if chunk is None:
                self._drained = True
                return
            first, last = chunk
            yield from range(first, last + 1)

    def _claim(
        self, claim_chunk: Callable[[Checkpoint, int], tuple[int, int] | None], total: int
    ) -> tuple[int, int] | None:
        """Claim the next chunk; while the store (or the outputs' bucket) is away, wait for
        it (no work without a chunk), backing off, until it answers or a signal ends it."""
        delay = 0.5
        waited_since: float | None = None
        while True:
            try:
                # Outputs durable before the write that folds their items in (a
                # bucket that is away waits here like the store).
                self._outputs.sync()
                self._steps.sync()
                return claim_chunk(self._build_checkpoint(), total)
            except FencedError:
                self._fenced = True
                raise
            except StoreUnavailableError as exc:
                if waited_since is None:
                    waited_since = self._clock()
                    print(
                        f"resumable: {self._store.describe()}: cannot claim the next chunk "
                        f"({exc}); waiting for the store",
                        file=sys.stderr,
                    )
                self._pause(delay * (0.5 + self._jitter()))
                delay = min(delay * 2, 10.0)

    def step(self, name: str, fn: Callable[[], R]) -> R:
        """A run-level named step (research, then parse, then write): runs at most once.

        Its result is stored as JSON and returned as stored, as for ``item.step``.
        """
        return self._step(f"run-{_step_name(name)}", fn)

    def checkpoint(self) -> None:
        """Write the checkpoint now, whatever the policy says."""
        self._flush()

    def summary(self) -> Summary:
        """Counts and usage so far."""
        cp = self._checkpoint
        return Summary(
            total=self._total,
            done=len(self._completed) if not cp.finished else cp.items_done,
            skipped=len(self._skipped),
            failed=len(self._failed),
            tokens=self._tokens,
            cost_usd=round(self._cost_usd, 6),
            attempt=self.attempt,
            resumed_from=self.resumed_from,
            # A parallel worker's share ends when the pool is empty; the batch's end is
            # the operator's to see once every worker ended.
            finished=cp.finished or self._drained,
        )

    def close(self) -> None:
        """Flush pending progress and restore signal handlers. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._flush_at_exit()
        finally:
            self._restore_signal_handlers()
            atexit.unregister(self._atexit)

    # --------------------------------------------------------------- internals

    def _next_index(self) -> int:
        index = self._start
        while True:
            index = self._completed.first_missing(index)
            if index in self._skipped:
                index += 1
                continue
            return index

    def _careful_window(self) -> int | None:
        """Up to which item every commit is written at once (after an unexplained death).

        The operator sets RESUMABLE_CAREFUL after an attempt died without saying
        where; writing each commit until the item the dead attempt was working on
        makes the next death's position exact, so a poison item is found
        precisely, without per-item writes for the rest of the batch.
        """
        if not self.settings.careful:
            return None
        reader = getattr(self._outputs, "read_inflight", None)
        marker = reader() if reader is not None else None
        if marker is not None:
            return int(marker)
        # No marker: with exact positions the dead worker was at the saved one.
        return self.resumed_from if self._exact else 2**62

    def _check_fingerprint(self, current: str) -> None:
        # A run that started over from a finished checkpoint has no stored fingerprint
        # and nothing completed at its first list; a second list in the same process
        # is checked against the first like any other.
        stored = self._fingerprint
        changed = stored and stored != current and (len(self._completed) or self._claim_chunk)
        if changed and not self.settings.allow_changed_items:
            error = FingerprintMismatchError(
                f"{self._store.describe()}: the item list changed since the checkpoint was "
                f"written (fingerprint {stored}, now {current}; {len(self._completed)} items "
                "done). Restore the original list, set RESUMABLE_ALLOW_CHANGED_ITEMS=1 to "
                f"resume anyway, or start over: {self._start_over_hint()}."
            )
            if self._checkpoint.finished:
                self._unfinish(error)
            raise error
        self._fingerprint = current

    def _unfinish(self, error: ResumableError) -> None:
        """Take back this process's finished checkpoint: a later list did not match.

        The operator (and `resumable run`) takes a finished checkpoint as every item
        done, whatever the worker's exit: left as it is, a worker that then fails on
        a changed list would end the batch Succeeded. Saved not finished, with the
        error, the exit counts as a failure. When the store is away the error is
        only printed (the worker's own exception is what it reports).
        """
        with self._guard():
            self._checkpoint.finished = False
            self._checkpoint.last_error = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        try:
            self._flush(final=True)
        except ResumableError as unsaved:
            print(
                f"resumable: could not take back the finished checkpoint: {unsaved}",
                file=sys.stderr,
            )

    def _start_over_hint(self) -> str:
        """How to start this batch over from item 1, for the store it uses."""
        root = getattr(self._store, "root", None)
        if root is None:
            return "change spec.runId"
        return f"change spec.runId (`resumable run`), or delete {root} (a worker run by hand)"

    def _step(self, key: str, fn: Callable[[], R]) -> R:
        full = f"{self._step_scope}~{key}"
        saved = self._steps.get(full)
        if saved is not None:
            result: R = saved["result"]
            return result
        result = fn()
        # Stored as JSON: anything else would come back as a string on resume.
        json_value(result, f"step {key!r}: its result")
        encoded = json.dumps(result)
        self._steps.put(full, {"result": result})
        self._steps.sync()
        if getattr(self._steps, "first_wins", False):
            # A bucket's step results: a parallel worker that stored one first wins,
            # and every worker goes on with that one.
            saved = self._steps.get(full)
            if saved is not None:
                encoded = json.dumps(saved["result"])
        # Hand back the stored form (int keys become strings, tuples lists), as a
        # resumed attempt will get it: code that relies on the original object
        # fails on the first run, not only after a crash.
        stored: R = json.loads(encoded)
        return stored

    def _commit(self, item: Item[Any]) -> None:
        # The per-item hot path: one critical section records the item and, when the
        # policy says so, writes; written out rather than taken through _guard(),
        # whose generator costs more than the work inside.
        with self._lock:
            self._critical += 1
            try:
                output = item._output
                if output is not None:
                    if type(output) in (dict, list):  # may have changed since it was set
                        json_value(output, f"item {item.number}'s output")
                    self._outputs.put(
                        f"{item.index:08d}",
                        {"index": item.index, "key": item.key, "output": output},
                    )
                self._completed.add(item.index)
                if self._live is not None:
                    self._live.update(len(self._completed), self._total)
                self._inflight = None
                if self._failed:
                    self._failed.discard(item.index)
                self._tokens += item.tokens
                self._cost_usd += item.cost_usd
                self._iteration += 1
                coalescer = self._coalescer
                coalescer.record(items=1, cost_usd=item.cost_usd)
                due = coalescer.due(self._clock()) or (
                    self._careful_until is not None and item.index <= self._careful_until
                )
                if due and not self._fenced:
                    self._write(final=False)
            finally:
                self._critical -= 1
        self._raise_deferred_signal()

    def _record_error(self, item: Item[Any], exc: BaseException) -> None:
        with self._guard():
            self._iteration += 1
            self._failed.add(item.index)
            message = f"{type(exc).__name__}: {exc}"
            self._checkpoint.last_error = message[:MAX_ERROR_CHARS]
            self._checkpoint.last_error_index = item.index
            if self._errors == "continue":
                # The loop goes on: the error is saved with the next write the policy
                # allows (counted as unsaved work), not with a write per failed item.
                self._coalescer.record(items=1)
                if self._coalescer.due(self._clock()) and not self._fenced:
                    self._write(final=False)
                return
        try:
            self._flush(final=True)  # the worker stops: say where it died
        except StoreUnavailableError as unsaved:
            # The item's own exception is what the worker reports; the store's outage
            # must not replace it. The error and pending progress stay unsaved (the
            # exit hooks do not send a failed write again): the next attempt redoes them.
            print(
                f"resumable: could not save the error of item {item.number}: {unsaved}",
                file=sys.stderr,
            )

    def _finish(self) -> None:
        if self._claim_chunk is not None:
            # The pool was empty at the last claim, which folded this worker's items
            # in; the batch's end is the operator's to see, once every worker ended.
            return
        total = self._total or 0
        done = self._completed.copy()
        for index in self._skipped:
            done.add(index)
        if self._start:
            done.add_range(0, self._start - 1)
        if not done.covers(total):
            return
        with self._guard():
            self._checkpoint.items_done = len(self._completed)
            self._checkpoint.finished = True
        self._flush(final=True)
        self._clear_steps()

    def _clear_steps(self) -> None:
        """Forget what only a resumed attempt would need: step results, the in-flight marker."""
        remover = getattr(self._steps, "clear", None)
        if callable(remover):
            remover()
        unmark = getattr(self._outputs, "clear_inflight", None)
        if callable(unmark):
            unmark()
        if self._live is not None:
            self._live.remove()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Defer SIGTERM/SIGINT while in-memory state or a write is half done."""
        with self._lock:
            self._critical += 1
            try:
                yield
            finally:
                self._critical -= 1
        self._raise_deferred_signal()

    def _raise_deferred_signal(self) -> None:
        """Act on a signal that arrived inside a critical section, once it is left.

        Only the main thread may act on it (Terminated in another thread would just
        end that thread): elsewhere the signal is sent again, and the handler, which
        Python runs in the main thread, raises it there.
        """
        if self._critical == 0 and self._deferred_signal is not None:
            signum, self._deferred_signal = self._deferred_signal, None
            if threading.current_thread() is not threading.main_thread():
                signal.raise_signal(signum)
                return
            raise Terminated(signum)

    def _build_checkpoint(self) -> Checkpoint:
        cp = self._checkpoint
        context: dict[str, Any] = {
            "taskId": self._identity,
            "workerId": self.settings.worker_id,
            "attempt": self.attempt,
            "iteration": self._iteration,
            "redone": self._redone_total,
            "startedAt": self._began,
            "doneAtStart": self._done_at_start,
            "user": self.context,
        }
        if self.context and self._claim_chunk is not None:
            if not self._context_warned:
                self._context_warned = True
                print(
                    "resumable: run.context is not saved when the batch runs parallel "
                    "workers (spec.parallelism > 1): each worker keeps its own while it runs; "
                    "keep state a restart needs in item outputs or steps",
                    file=sys.stderr,
                )
            context["user"] = {}
        elif self.context:
            # User state: check it fits and snapshot it as JSON, so later changes to
            # run.context don't alter a checkpoint already handed to the store. Each
            # value was checked as it was set; one changed in place since is
            # refused here, by its key.
            for key, value in self.context.items():
                if type(value) in (dict, list):
                    json_value(value, f"run.context[{key!r}]")
            encoded = json.dumps(context, allow_nan=False)
            if len(encoded) > MAX_CONTEXT_BYTES:
                raise UsageError(
                    f"run.context is {len(encoded)} bytes serialised, over the "
                    f"{MAX_CONTEXT_BYTES}-byte limit: keep large state in item outputs or "
                    "steps, not in the checkpoint"
                )
            context = json.loads(encoded)
        else:
            # Ids and counters only: JSON already, and far below the limit.
            context["user"] = {}
        finished = cp.finished
        completed = "" if finished else str(self._completed)
        if len(completed) > MAX_COMPLETED_CHARS:
            raise ResumableError(
                f"the completed items need {len(completed)} characters as ranges, over the "
                f"{MAX_COMPLETED_CHARS} status allows: too many items failed and were left "
                "behind (errors='continue'); let the worker stop on errors instead"
            )
        # Every value comes from state validated on the way in (the context was
        # checked above), so the hot path updates the fields in place instead of
        # validating a new model on every write.
        cp.__dict__.update(
            next_index=0 if finished else self._next_index(),
            completed=completed,
            attempt=self.attempt,
            items_done=len(self._completed),
            tokens=self._tokens,
            cost_usd=round(self._cost_usd, 6),
            total_items=self._total,
            fingerprint=self._fingerprint,
            context=context,
            inflight=self._inflight,
            updated_at=_now_rfc3339(),
        )
        if self._inline is not None:
            cp.__dict__["outputs"] = self._inline()
        return cp

    #: A parallel worker found the pool empty: its part of the batch is done.
    _drained = False

    #: The parallel worker said once that run.context is not saved.
    _context_warned = False

    #: The iteration (commits and recorded errors) at which a write last failed with
    #: an error raised to the caller; None once one succeeds. The exit hooks don't
    #: start that same write again.
    _failed_at: int | None = None

    def _flush_at_exit(self) -> None:
        """The exit hooks' write: the end of ``items()``, close(), interpreter exit.

        Skipped when nothing is pending, and when a write of this same progress
        already failed and was raised (the end of the batch, then the loop's
        ``finally``, then the atexit close() would each wait out a new deadline
        for it, past the pod's grace period). After SIGTERM or SIGINT the store
        ends every write within its final deadline of the signal anyway.
        """
        if self._fenced or self._coalescer.pending_items == 0:
            return
        if self._failed_at != self._iteration:
            self._flush()

    def _flush(self, *, final: bool = True) -> None:
        """Make outputs durable, then write the position that covers them."""
        if self._fenced:
            return
        # Runs once per item at everyItems=1: the critical section is written out
        # rather than taken through _guard(), whose generator costs more than it guards.
        with self._lock:
            self._critical += 1
            try:
                self._write(final)
            finally:
                self._critical -= 1
        self._raise_deferred_signal()

    def _write(self, final: bool) -> None:
        """The body of _flush, with signals deferred.

        A final write (exit, end of batch, ``run.checkpoint()``) is the store's
        patient one and raises when the store stays away. A boundary write is one
        quick try (the store's ``try_checkpoint`` where it has one): when the store
        is away (StoreUnavailableError) the progress stays pending, the items go
        on and the coalescer says when to try again; once writes have failed for
        UNSAVED_GRACE_SECONDS, the run waits here until one lands.
        """
        if final:
            self._save(final=True)
            return
        coalescer = self._coalescer
        started = self._clock()
        if coalescer.must_wait(started):
            self._wait_for_a_write()
            return
        if coalescer.backing_off(started):
            return  # asked for before its retry is due (careful mode): it stays pending
        try:
            self._save(final=False, quick=True)
        except StoreUnavailableError as exc:
            self._away = str(exc)
            coalescer.failed(started=started, now=self._clock(), jitter=self._jitter())

    #: Why the last boundary write failed for want of the store, for the message
    #: the run prints when it stops to wait.
    _away = ""

    def _wait_for_a_write(self) -> None:
        """The unsaved-work limit is reached: take no new item until a write lands.

        Patient writes (the store's BOUNDARY_DEADLINE each), backing off between
        them, until one lands, the store refuses or fences (raised as ever), or a
        signal arrives: it ends the wait at once (the exit's final write follows).
        """
        coalescer = self._coalescer
        began = self._clock()
        failing = began - (coalescer.failing_since or began)
        print(
            f"resumable: {self._store.describe()}: no checkpoint saved for "
            f"{began - coalescer.last_write:.0f} s, writes failing for {failing:.0f} s "
            f"({self._away or 'the store is away'}); no new item until one lands",
            file=sys.stderr,
        )
        while self._deferred_signal is None:
            started = self._clock()
            try:
                self._save(final=False)
            except StoreUnavailableError as exc:
                self._away = str(exc)
                now = self._clock()
                retry_at = coalescer.failed(
                    started=started, now=now, jitter=self._jitter(), waiting=True
                )
                if retry_at > now:
                    self._pause(retry_at - now)
                continue
            print(
                f"resumable: {self._store.describe()}: checkpoint saved after waiting "
                f"{self._clock() - began:.0f} s; items go on",
                file=sys.stderr,
            )
            return

    def _pause(self, seconds: float) -> None:
        """Sleep between two tries; in the main thread a signal ends it at once."""
        main = threading.current_thread() is threading.main_thread()
        self._waiting = main
        try:
            self._sleep(seconds)
        finally:
            self._waiting = False

    def _save(self, *, final: bool, quick: bool = False) -> None:
        """Make outputs durable, then write the position that covers them.

        ``quick``: the store's one quick try (``try_checkpoint``), where it has one.
        """
        new = self._build_checkpoint()
        progress = (
            f"{new.items_done}/{self._total}" if self._total is not None else str(new.items_done)
        )
        write_once = getattr(self._store, "try_checkpoint", None) if quick else None
        try:
            self._outputs.sync()
            self._steps.sync()
            if write_once is not None:
                write_once(
                    new,
                    progress=progress,
                    expect_attempt=self.attempt,
                    expect_next=self._saved_next,
                )
            else:
                self._store.save_checkpoint(
                    new,
                    progress=progress,
                    expect_attempt=self.attempt,
                    expect_next=self._saved_next,
                    final=final,
                )
        except FencedError:
            self._fenced = True
            raise
        except StoreUnavailableError:
            if final:
                self._failed_at = self._iteration
            raise
        except ResumableError:
            self._failed_at = self._iteration  # e.g. refused by the server
            raise
        self._failed_at = None
        self._saved_next = new.next_index
        self._checkpoint = new
        self._coalescer.written(self._clock())

    # ----------------------------------------------------------------- signals

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            # Python lets only the main thread set handlers: say what is lost.
            warnings.warn(
                "resumable.start() outside the main thread: SIGTERM and SIGINT will not "
                "save pending progress (start the run in the main thread, or call "
                "run.checkpoint() yourself before the process is stopped)",
                RuntimeWarning,
                stacklevel=4,
            )
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        store: Any = self._store
        if hasattr(store, "begin_shutdown"):
            store.begin_shutdown()  # the grace period runs from now
        if self._critical:
            if getattr(store, "interruptible", False):
                # A boundary write waiting on the API server: give it up now, so
                # the exit's final write starts at once (the store counts the
                # write as one that may have landed).
                store.interruptible = False
                raise Terminated(signum)
            if self._waiting:
                # The pause between two tries at the unsaved-work limit: nothing
                # is half done, and the exit's final write should start now.
                self._waiting = False
                raise Terminated(signum)
            self._deferred_signal = signum
            return
        raise Terminated(signum)

    def record_usage_error(self, error: UsageError) -> None:
        """Save a usage error's message as the checkpoint's run-level error, before exit.

        Pending progress is saved with it; when the checkpoint itself is what is
        wrong (run.context over its budget), the message goes with the last one
        saved. The operator and `resumable run` put it in the Failed condition.
        Called by the exit hook (:func:`exit_on_usage_errors`); never raises.
        """
        if self._fenced:
            return
        message = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        with self._guard():
            cp = self._checkpoint
            cp.last_error = message
            cp.last_error_index = None  # the run's error, no item's
            # Not finished, whatever the list's end said: the batch failed (as _unfinish).
            cp.finished = False
        try:
            try:
                self._flush(final=True)
            except UsageError:
                # The last checkpoint built (the one this one could not replace).
                cp.items_done = len(IndexSet.parse(cp.completed))
                self._store.save_checkpoint(
                    cp,
                    progress=(
                        f"{cp.items_done}/{self._total}"
                        if self._total is not None
                        else str(cp.items_done)
                    ),
                    expect_attempt=self.attempt,
                    expect_next=self._saved_next,
                    final=True,
                )
        except ResumableError as unsaved:
            print(f"resumable: could not save the usage error: {unsaved}", file=sys.stderr)
        # Nothing more to save at exit: it would meet the same error again.
        self._closed = True
        self._restore_signal_handlers()
        atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        try:
            self.close()
        except ResumableError as exc:
            # At interpreter exit nobody can catch it: one line, not a traceback.
            print(f"resumable: the exit checkpoint was not saved: {exc}", file=sys.stderr)

    def _disarm_in_child(self) -> None:
        """In a forked child: never flush the parent's progress (the parent does)."""
        self._closed = True
        self._fenced = True  # no write of any kind from this process
        atexit.unregister(self._atexit)


#: Every Run alive in this process, for the fork hook and the usage exit below.
_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()


def exit_on_usage_errors() -> None:
    """Make an uncaught UsageError end the process with EXIT_USAGE (idempotent).

    Python exits 1 after any uncaught exception, which the operator retries. The
    hook chained to sys.excepthook prints the traceback as before, saves the
    error in each live run's checkpoint (the cause the Failed condition shows)
    and raises SystemExit(EXIT_USAGE), which CPython honours from the hook: the
    exit hooks (atexit) still run.
    """
    previous = sys.excepthook
    if getattr(previous, "_resumable_usage_exit", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        previous(kind, error, tb)
        if not isinstance(error, UsageError):
            return
        for run in list(_live_runs):
            run.record_usage_error(error)
        print(
            f"resumable: a usage error: exit {names.EXIT_USAGE}, which is not retried",
            file=sys.stderr,
        )
        raise SystemExit(names.EXIT_USAGE)

    hook._resumable_usage_exit = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _disarm_runs_in_child() -> None:
    for run in list(_live_runs):
        run._disarm_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disarm_runs_in_child)
