"""The controller's keyed work queue, in the manner of client-go's workqueue.

kopf's watch handlers add ``(namespace, name)`` keys; a few workers take keys one
at a time and hand each to the controller's reconcile, run in a thread. A key is
never processed by two workers at once: added while it is being processed, it
is processed once more after. Keys already queued collapse, and a key added with
a delay waits on a timer (the earliest wins). A key added ``urgent`` (a worker
pod ended: a batch waits for its next attempt) goes before every key that is
not, so a failure is not served after a thousand routine looks
(bench/operator_scale.py). A reconcile that raises is tried again after
:data:`ERROR_RETRY_SECONDS`; one that returns a delay is added again after it.

The queue, its sets and the timers belong to the event loop's thread:
:meth:`WorkQueue.add` and :meth:`WorkQueue.forget` called from another thread
hand themselves over to the loop. Used by :class:`resumable_operator.controller.Controller`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("resumable_operator")

Key = tuple[str, str]
#: Processes one key; returns seconds until it should be processed again, or None.
Process = Callable[[str, str], float | None]

#: Wait before processing a key again whose processing raised.
ERROR_RETRY_SECONDS = 5.0


class WorkQueue:
    """Keys to process, at most one worker per key, with delayed adds."""

    def __init__(self, process: Process, *, workers: int) -> None:
        self.process = process
        self.workers = workers
        # One ticket per queued key wakes one worker, which takes the first urgent
        # key, else the first other one.
        self._tickets: asyncio.Queue[None] = asyncio.Queue()
        self._urgent: collections.deque[Key] = collections.deque()
        self._normal: collections.deque[Key] = collections.deque()
        self._queued: set[Key] = set()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._again_urgent: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Threads of their own: the loop's default executor has min(32, CPUs + 4),
        # six on two cores, fewer than the workers one may ask for.
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._lock = threading.Lock()
        self._in_flight = 0  # keys being processed in worker threads (under _lock)

    def start(self) -> None:
        """Start the workers on the running event loop. Keys added before are
        processed first."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="reconcile")
        for index in range(self.workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{index}"))

    async def stop(self, *, wait: float) -> None:
        """Cancel the timers and the workers, then wait up to ``wait`` seconds for
        the keys still being processed in threads."""
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
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def in_flight(self) -> int:
        """Keys being processed now."""
        with self._lock:
            return self._in_flight

    def depth(self) -> int:
        """Keys waiting for a worker: queued, or added again while being processed.
        Keys on a timer are not counted until it fires. Any thread (a read of two sets)."""
        return len(self._queued) + len(self._again)

    def add(self, key: Key, *, delay: float = 0.0, urgent: bool = False) -> None:
        """Process the key, now or after a delay. Duplicates collapse. Any thread.

        ``urgent`` keys go before the others (a queued key added urgent moves up).
        """
        if self._off_loop():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(
                functools.partial(self.add, key, delay=delay, urgent=urgent)
            )
            return
        if delay > 0:
            self._add_after(key, delay)
        elif key in self._running:
            self._again.add(key)
            if urgent:
                self._again_urgent.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            (self._urgent if urgent else self._normal).append(key)
            self._tickets.put_nowait(None)
        elif urgent and key in self._normal:
            self._normal.remove(key)
            self._urgent.append(key)

    def forget(self, key: Key) -> None:
        """Drop the key's timer. Any thread."""
        if self._off_loop():
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._cancel_timer, key)
        else:
            self._cancel_timer(key)

    def _off_loop(self) -> bool:
        """True when called from a thread other than the running loop's."""
        return self._loop is not None and threading.get_ident() != self._loop_thread

    def _add_after(self, key: Key, delay: float) -> None:
        loop = self._loop or asyncio.get_running_loop()
        existing = self._timers.get(key)
        due = loop.time() + delay
        if existing is not None and existing.when() <= due:
            return  # an earlier timer stands
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _cancel_timer(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def _work(self) -> None:
        while True:
            await self._tickets.get()
            key = self._urgent.popleft() if self._urgent else self._normal.popleft()
            self._queued.discard(key)
            if key in self._running:  # never two workers on one key
                self._again.add(key)
                continue
            self._running.add(key)
            try:
                assert self._loop is not None
                assert self._executor is not None
                again_in = await self._loop.run_in_executor(
                    self._executor, self._process_counted, key
                )
            except Exception:
                log.exception(
                    "reconcile of %s/%s failed; retrying in %.0fs", *key, ERROR_RETRY_SECONDS
                )
                again_in = ERROR_RETRY_SECONDS
            finally:
                self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                urgent = key in self._again_urgent
                self._again_urgent.discard(key)
                self.add(key, urgent=urgent)
            elif again_in is not None:
                self.add(key, delay=again_in)

    def _process_counted(self, key: Key) -> float | None:
        with self._lock:
            self._in_flight += 1
        try:
            return self.process(*key)
        finally:
            with self._lock:
                self._in_flight -= 1
