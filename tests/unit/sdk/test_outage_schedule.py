"""Writes while the store is away: items go on, tries back off, and the unsaved work is bounded.

The pure rule (resumable._policy: ``backoff``, ``next_try``, the Coalescer's
``due``, ``backing_off`` and ``must_wait``) on numbers; then whole runs on a
LocalStore that is away on demand, with a fake clock, a fake sleep that moves
it, and the jitter pinned. tests/reliability/test_outage_throughput.py plays the
same against the real kube-apiserver behind a proxy that drops it.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runkit import FakeClock, RecordingStore

from resumable import CheckpointPolicy, ResumableError, Run, Settings, StoreUnavailableError
from resumable._policy import (
    RETRY_CAP_SECONDS,
    UNSAVED_GRACE_SECONDS,
    WAIT_SHARE,
    Coalescer,
    backoff,
    next_try,
)
from resumable._run import Terminated
from resumable.errors import FencedError, StoreRefusedError
from resumable.v1alpha1 import Checkpoint

GRACE = UNSAVED_GRACE_SECONDS


# ------------------------------------------------------------------ the pure rule


def test_the_gap_doubles_from_one_second_up_to_the_cap() -> None:
    assert [backoff(n, jitter=0.0) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert backoff(10_000, jitter=0.0) == RETRY_CAP_SECONDS  # no overflow in a long outage


def test_jitter_shortens_a_gap_by_at_most_half() -> None:
    assert backoff(3, jitter=0.5) == 3.0
    assert backoff(3, jitter=0.999) == pytest.approx(2.002)
    assert min(backoff(4, jitter=j / 100) for j in range(100)) > RETRY_CAP_SECONDS / 2


def test_a_refused_try_is_followed_by_the_backoff_alone() -> None:
    assert next_try(100.0, 0.002, 1, 0.0, waiting=False) == 101.0
    assert next_try(100.0, 0.002, 4, 0.0, waiting=False) == 108.0


def test_a_try_that_waited_for_an_answer_keeps_failed_tries_under_a_tenth_of_the_time() -> None:
    # One second without an answer: the next try no sooner than 10 s after it began.
    assert next_try(100.0, 1.0, 1, 0.0, waiting=False) == 110.0
    assert next_try(100.0, 1.0, 1, 0.999, waiting=False) == 110.0  # jitter never shortens it
    assert next_try(100.0, 0.5, 5, 0.0, waiting=False) == 108.0  # the backoff was longer


def test_a_run_that_waits_anyway_only_backs_off() -> None:
    # At the limit the items have stopped: a 5 s patient write is not stretched to 50 s.
    assert next_try(100.0, 5.0, 3, 0.0, waiting=True) == 104.0


def away(policy: CheckpointPolicy | None = None, *, at: float = 10.0) -> Coalescer:
    """A coalescer with work pending whose write at ``at`` was refused at once."""
    rule = Coalescer(policy or CheckpointPolicy(), last_write=at - 10.0)
    rule.record()
    assert rule.due(at)
    rule.failed(started=at, now=at + 0.001, jitter=0.0)
    return rule


def test_after_a_failed_write_the_next_is_due_at_its_retry_and_not_at_every_boundary() -> None:
    rule = away()
    for _ in range(100):
        rule.record()  # the policy's triggers would fire at every one of these
    assert not rule.due(10.99)
    assert rule.backing_off(10.99)
    assert rule.due(11.0)
    rule.failed(started=11.0, now=11.001, jitter=0.0)
    assert (rule.failures, rule.retry_at) == (2, 13.0)
    assert not rule.due(12.9)
    assert rule.due(13.0)


def test_the_retry_waits_for_the_policys_minimum_interval() -> None:
    rule = away(CheckpointPolicy(min_interval_seconds=5.0))
    assert rule.retry_at == 15.0
    assert not rule.due(14.9)


def test_the_limit_counts_from_the_first_failed_write() -> None:
    rule = away(at=10.0)
    for _ in range(30):  # writes keep failing, at growing gaps
        started = rule.retry_at
        rule.failed(started=started, now=started + 0.001, jitter=0.3)
        if started >= 10.0 + GRACE:
            break
    assert rule.failing_since == 10.0
    assert not rule.must_wait(10.0 + GRACE - 0.01)
    assert rule.must_wait(10.0 + GRACE)
    # Past the limit a write is due at every boundary (the run waits in it), and it
    # is no longer "backing off".
    assert rule.due(10.0 + GRACE)
    assert not rule.backing_off(10.0 + GRACE)


def test_a_write_that_lands_ends_the_outage() -> None:
    rule = away()
    rule.written(12.0)
    assert (rule.failures, rule.failing_since, rule.pending_items) == (0, None, 0)
    assert not rule.must_wait(12.0 + 2 * GRACE)
    rule.record()
    assert not rule.due(12.5)  # the policy's triggers again: one second
    assert rule.due(13.0)


@pytest.mark.parametrize(("took", "most_tries"), [(0.002, 15), (1.0, 7)])
def test_over_the_grace_period_failed_tries_take_at_most_a_tenth_of_the_time(
    took: float, most_tries: int
) -> None:
    # Items of 50 ms; every try fails after ``took`` (refused at once, or no answer
    # within a quick try's timeout). The time the items lose stays under WAIT_SHARE
    # of the outage plus the first try, and the run waits only once it is GRACE old.
    rule = Coalescer(CheckpointPolicy())
    now, lost, tries = 0.0, 0.0, 0
    while not rule.must_wait(now):
        now += 0.05
        rule.record()
        if rule.due(now):
            tries += 1
            rule.failed(started=now, now=now + took, jitter=0.5)
            now += took
            lost += took
    assert lost <= took + WAIT_SHARE * now
    assert tries <= most_tries
    assert GRACE <= now - (rule.failing_since or 0.0) < GRACE + took + 0.1


# ------------------------------------------------------------------ through a Run


class OutageStore(RecordingStore):
    """A LocalStore away while the clock is in ``down``, with a quick try as the kube store has.

    ``calls`` records each write asked for: ``quick`` (try_checkpoint), ``patient``
    (a boundary save_checkpoint) or ``final``, with the clock's time.
    """

    def __init__(self, root: Path, clock: FakeClock) -> None:
        super().__init__(root)
        self.clock = clock
        self.down = (0.0, 0.0)
        self.refuse: Callable[[str], Exception] | None = None
        self.calls: list[tuple[str, float]] = []

    def _attempt(self, kind: str, checkpoint: Checkpoint, **kwargs: Any) -> None:
        now = self.clock.now
        self.calls.append((kind, now))
        if self.refuse is not None:
            raise self.refuse(f"{self.describe()}: refused")
        if self.down[0] <= now < self.down[1]:
            raise StoreUnavailableError(f"{self.describe()}: 503: unavailable")
        super().save_checkpoint(checkpoint, **kwargs)

    def save_checkpoint(self, checkpoint: Checkpoint, **kwargs: Any) -> None:
        self._attempt("final" if kwargs.get("final") else "patient", checkpoint, **kwargs)

    def try_checkpoint(self, checkpoint: Checkpoint, **kwargs: Any) -> None:
        self._attempt("quick", checkpoint, final=False, **kwargs)

    def kinds(self, since: float = 0.0, until: float = float("inf")) -> list[str]:
        return [kind for kind, t in self.calls if since <= t < until]

    def times(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [t for _, t in self.calls if since <= t < until]


class Timeline:
    """The fake clock, a sleep that moves it, and the jitter pinned to 0.5."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.during_sleep: Any = None  # called at each sleep, e.g. to send a signal

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.during_sleep is not None:
            self.during_sleep()
        self.clock.advance(seconds)


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


@pytest.fixture
def store(store_dir: Path, timeline: Timeline) -> OutageStore:
    return OutageStore(store_dir, timeline.clock)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    made: list[Run] = []
    yield made
    for run in made:
        with contextlib.suppress(ResumableError):
            run.close()
        atexit.unregister(run._atexit)


@pytest.fixture
def run(store: OutageStore, timeline: Timeline, runs: list[Run]) -> Run:
    """A run on the store, its time and jitter injected as Run takes them."""
    settings = Settings(batch_name="unit", directory=store.root, handle_signals=False)
    made = Run(
        settings,
        store,
        store.outputs,
        store.steps,
        clock=timeline.clock,
        sleep=timeline.sleep,
        jitter=lambda: 0.5,
    )
    runs.append(made)
    return made


def work(run: Run, timeline: Timeline, items: int, *, step: float) -> list[float]:
    """Items of ``step`` seconds (of the fake clock); returns the time each one started."""
    started: list[float] = []
    for item in run.items(range(items)):
        started.append(timeline.clock.now)
        with item:
            timeline.clock.advance(step)
            item.output = item.index
    return started


# Steps of 1/8 s and 1/2 s: the fake clock adds them up exactly.


def test_items_go_on_while_boundary_writes_fail_and_the_next_write_saves_them_all(
    run: Run, store: OutageStore, timeline: Timeline
) -> None:
    store.down = (2.5, 20.0)
    work(run, timeline, 400, step=0.125)  # 50 s of items

    assert timeline.sleeps == []  # the items never waited
    # A write a second until the outage; during it, quick tries only, 1 (the
    # policy's minimum interval), 1.5, 3 then 6 s apart (the backoff at jitter
    # 0.5), not one at every boundary.
    assert store.kinds(2.5, 20.0) == ["quick"] * 5, store.calls
    assert store.times(2.5, 20.0) == [3.0, 4.0, 5.5, 8.5, 14.5]
    # The first write after the outage (at 20.5 s) covers every item done meanwhile.
    assert [w.next_index for w in store.writes][:3] == [8, 16, 164]
    assert store.writes[-1].finished
    assert store.kinds()[-1] == "final"


def test_at_the_limit_the_run_takes_no_new_item_until_a_write_lands(
    run: Run,
    store: OutageStore,
    timeline: Timeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    back = 5.25 + GRACE + 30.0
    store.down = (5.25, back)
    starts = work(run, timeline, 300, step=0.5)

    first_failure = store.times(5.25)[0]
    assert first_failure == 6.0
    limit = first_failure + GRACE
    # Items went on up to the limit (the last one ending there), then none started
    # until a write landed once the store was back.
    assert max(t for t in starts if t < back) == limit - 0.5
    assert min(t for t in starts if t > limit) == 96.0
    # Waiting: patient writes (not quick tries), 6 s apart (the backoff's cap at
    # jitter 0.5), the last of them landed at 96 s.
    assert store.kinds(limit, 96.5) == ["patient"] * 6
    assert store.times(limit, 96.5) == [66.0, 72.0, 78.0, 84.0, 90.0, 96.0]
    assert timeline.sleeps == [6.0] * 5
    # Nothing lost or taken twice: the write that landed covers every item done.
    landed = next(w for w in store.writes if w.next_index * 0.5 > 5.25)
    assert landed.next_index == len([t for t in starts if t < back]) == 132
    assert store.writes[-1].finished
    assert store.writes[-1].items_done == 300
    err = capsys.readouterr().err
    assert "writes failing for 60 s" in err
    assert "no new item until one lands" in err
    assert "checkpoint saved after waiting 30 s; items go on" in err


def test_a_signal_while_the_run_waits_at_the_limit_ends_the_wait_at_once(
    run: Run, store: OutageStore, timeline: Timeline
) -> None:
    store.down = (5.25, float("inf"))
    seen: list[bool] = []

    def sigterm() -> None:  # what the handler does when SIGTERM comes during the pause
        seen.append(run._waiting)
        run._on_signal(signal.SIGTERM, None)

    timeline.during_sleep = sigterm
    with pytest.raises(Terminated):
        work(run, timeline, 10_000, step=0.5)
    assert seen == [True]  # the first pause between two patient writes
    assert store.kinds().count("patient") == 1
    assert run._critical == 0
    assert not run._waiting


def test_a_signal_deferred_between_two_tries_at_the_limit_ends_the_wait(
    run: Run, store: OutageStore, timeline: Timeline
) -> None:
    # Outside the pause (in another thread, say) the signal is deferred: the wait
    # stops before its next try and the signal is raised on the way out.
    store.down = (5.25, float("inf"))

    def deferred() -> None:
        run._deferred_signal = signal.SIGTERM

    timeline.during_sleep = deferred
    with pytest.raises(Terminated):
        work(run, timeline, 10_000, step=0.5)
    assert store.kinds().count("patient") == 1  # the one before the pause; none after


def forbidden(message: str) -> StoreRefusedError:
    return StoreRefusedError(message, status=403, message="forbidden")


@pytest.mark.parametrize("refusal", [FencedError, forbidden], ids=["fenced", "refused"])
def test_a_fenced_or_refused_quick_try_is_raised_at_once_as_before(
    run: Run,
    store: OutageStore,
    timeline: Timeline,
    refusal: Callable[[str], Exception],
) -> None:
    tried = 0

    def work_until_refused() -> None:
        nonlocal tried
        for item in run.items(range(100)):
            if item.index == 20:
                store.refuse = refusal
                tried = len(store.calls)
            with item:
                timeline.clock.advance(0.125)

    with pytest.raises((FencedError, StoreRefusedError)):
        work_until_refused()
    assert store.kinds()[tried:] == ["quick"]  # the first write after it; not tried again
    run.close()  # nor by the exit hooks
    assert store.kinds()[tried:] == ["quick"]


def test_the_exit_write_after_failed_boundary_writes_is_the_final_one(
    run: Run, store: OutageStore, timeline: Timeline
) -> None:
    store.down = (1.5, float("inf"))
    loop = run.items(range(100))
    for _ in range(30):
        with next(loop):
            timeline.clock.advance(0.125)
    assert store.kinds(1.5) == ["quick", "quick"]  # at 2 s, and its retry at 3 s
    store.down = (0.0, 0.0)
    loop.close()  # the loop's finally: the exit write, patient with FINAL_DEADLINE
    assert store.kinds()[-1] == "final"
    assert store.writes[-1].next_index == 30
