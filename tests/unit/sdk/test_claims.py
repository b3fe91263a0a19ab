"""The chunk-claim protocol of parallel workers (resumable.claims), on its own.

Worked examples first (what a claim takes, what a release gives back, what a
zombie may not do), then a property test: hypothesis drives interleavings of
claims, commits, progress writes, worker deaths, zombie writes and operator
replays against one status, and after every step checks that no two live
workers hold an item, that nothing saved is ever lost, and that draining the
pool ends with every item done exactly once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resumable import claims
from resumable.errors import FencedError
from resumable.ranges import IndexSet
from resumable.v1alpha1 import ResumableBatchStatus, SkippedItem, WorkerSlot


def status_with(slots: int, *, attempt: int = 1) -> ResumableBatchStatus:
    return ResumableBatchStatus(workers=[WorkerSlot(slot=i, attempt=attempt) for i in range(slots)])


def test_a_claim_takes_the_lowest_free_run_at_most_a_chunk_long() -> None:
    status = status_with(2)
    assert claims.claim_next(status, 0, 1, total=20, size=5, what="b") == (0, 4)
    assert claims.claim_next(status, 1, 1, total=20, size=5, what="b") == (5, 9)
    assert [w.claim for w in status.workers] == ["0-4", "5-9"]


def test_a_claim_stops_at_an_item_already_done_skipped_or_held() -> None:
    status = status_with(2)
    status.checkpoint.completed = "0-2,6"
    status.skipped = [SkippedItem(index=4, attempts=3)]
    assert claims.claim_next(status, 0, 1, total=20, size=10, what="b") == (3, 3)
    assert claims.claim_next(status, 1, 1, total=20, size=10, what="b") == (5, 5)
    assert claims.free_chunk(status, 20, 10) == (7, 16)


def test_claiming_folds_the_slots_done_items_usage_and_gives_up_its_old_chunk() -> None:
    status = status_with(1)
    claims.claim_next(status, 0, 1, total=10, size=4, what="b")
    entry = claims.record(
        status, 0, 1, done=IndexSet.parse("0-3"), tokens=40, cost_usd=0.5, inflight=None, what="b"
    )
    assert claims.progress_count(status) == 4  # counted while still in the slot
    assert claims.claim_next(status, 0, 1, total=10, size=4, what="b") == (4, 7)
    assert (entry.done, entry.tokens, entry.claim) == ("", 0, "4-7")
    cp = status.checkpoint
    assert (cp.completed, cp.items_done, cp.tokens, cp.cost_usd) == ("0-3", 4, 40, 0.5)


def test_the_pool_empty_marks_the_slot_idle() -> None:
    status = status_with(1)
    status.checkpoint.completed = "0-9"
    assert claims.claim_next(status, 0, 1, total=10, size=4, what="b") is None
    assert status.workers[0].idle
    assert claims.pool_empty(status, 10)
    assert not claims.pool_empty(status, None)  # unknown count: never empty


def test_a_release_returns_the_unfinished_chunk_keeps_what_was_committed_and_fences() -> None:
    status = status_with(2)
    claims.claim_next(status, 0, 1, total=20, size=5, what="b")
    claims.record(
        status, 0, 1, done=IndexSet.parse("0-1"), tokens=0, cost_usd=0, inflight=2, what="b"
    )
    assert claims.position(status.workers[0]) == 2
    claims.release(status, 0)
    entry = status.workers[0]
    assert (entry.attempt, entry.claim, entry.done, entry.inflight) == (2, "", "0-1", None)
    # Another worker takes the rest of the chunk; the committed items stay done.
    assert claims.claim_next(status, 1, 1, total=20, size=5, what="b") == (2, 6)
    with pytest.raises(FencedError, match="replaced by attempt 2"):
        claims.record(
            status, 0, 1, done=IndexSet.parse("0-4"), tokens=0, cost_usd=0, inflight=None, what="b"
        )
    with pytest.raises(FencedError):
        claims.claim_next(status, 0, 1, total=20, size=5, what="b")


def test_a_slot_that_no_longer_exists_is_fenced() -> None:
    with pytest.raises(FencedError, match="slot 3 does not exist"):
        claims.slot_of(status_with(2), 3, 1, "b")


@pytest.mark.parametrize(
    ("total", "workers", "size"), [(0, 4, 1), (10, 4, 1), (2000, 8, 25), (10**6, 64, 100)]
)
def test_the_default_chunk_gives_each_worker_about_ten_chunks_at_most_100_items(
    total: int, workers: int, size: int
) -> None:
    assert claims.default_chunk_size(total, workers) == size


# ------------------------------------------------------------------ the property


@dataclass
class Worker:
    """A worker process of one slot's attempt, as the SDK would hold it."""

    slot: int
    attempt: int
    chunk: list[int] = field(default_factory=list)
    mine: IndexSet = field(default_factory=IndexSet)  # completed by this attempt
    folded: IndexSet = field(default_factory=IndexSet)
    fenced: bool = False
    finished: bool = False


TOTAL = 37
SLOTS = 3
SIZE = 4


class ClaimProtocol(RuleBasedStateMachine):
    """The status is the store: each rule is one atomic write, as the stores make it."""

    def __init__(self) -> None:
        super().__init__()
        self.status = status_with(SLOTS)
        self.live: dict[int, Worker] = {i: Worker(i, 1) for i in range(SLOTS)}
        self.zombies: list[Worker] = []
        self.saved: IndexSet = IndexSet()  # items a write that landed said were done
        self.dead_unreleased: set[int] = set()

    # -- worker writes, each atomic (applied to a copy, kept only if it does not raise)

    def _write(self, worker: Worker, change: object) -> bool:
        trial = copy.deepcopy(self.status)
        try:
            change(trial)  # type: ignore[operator]
        except FencedError:
            worker.fenced = True
            return False
        self.status = trial
        return True

    @precondition(lambda self: any(not w.chunk and not w.finished for w in self.live.values()))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        worker = data.draw(
            st.sampled_from([w for w in self.live.values() if not w.chunk and not w.finished])
        )

        def change(status: ResumableBatchStatus) -> None:
            entry = claims.slot_of(status, worker.slot, worker.attempt, "b")
            entry.done = str(worker.mine.difference(worker.folded))
            chunk = claims.claim_next(
                status, worker.slot, worker.attempt, total=TOTAL, size=SIZE, what="b"
            )
            worker.chunk = list(range(chunk[0], chunk[1] + 1)) if chunk else []
            worker.finished = chunk is None

        if self._write(worker, change):
            self.saved.update(worker.mine)
            worker.folded = worker.mine.copy()

    @precondition(lambda self: any(w.chunk for w in self.live.values()))
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from([w for w in self.live.values() if w.chunk]))
        worker.mine.add(worker.chunk.pop(0))

    @precondition(lambda self: any(len(w.mine) for w in self.live.values()))
    @rule(data=st.data())
    def save(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from([w for w in self.live.values() if len(w.mine)]))
        done = worker.mine.difference(worker.folded)
        inflight = worker.chunk[0] if worker.chunk else None

        def change(status: ResumableBatchStatus) -> None:
            claims.record(
                status,
                worker.slot,
                worker.attempt,
                done=done,
                tokens=0,
                cost_usd=0,
                inflight=inflight,
                what="b",
            )

        if self._write(worker, change):
            self.saved.update(done)

    @rule(slot=st.integers(0, SLOTS - 1))
    def die(self, slot: int) -> None:
        """The worker's process is killed; it may go on as a zombie (a lost node)."""
        if slot in self.dead_unreleased:
            return
        self.zombies.append(self.live[slot])
        self.dead_unreleased.add(slot)

    @precondition(lambda self: bool(self.dead_unreleased))
    @rule(data=st.data(), replay=st.booleans())
    def operator_replaces(self, data: st.DataObject, replay: bool) -> None:
        """The operator sees the pod ended: one fenced write releases the slot; a restarted
        operator may decide the same again from what it read before (its write then fails
        the attempt test and changes nothing)."""
        slot = data.draw(st.sampled_from(sorted(self.dead_unreleased)))
        read_attempt = self.status.workers[slot].attempt
        for _ in range(2 if replay else 1):
            if self.status.workers[slot].attempt != read_attempt:
                break  # the test op on the attempt refuses the replay
            claims.release(self.status, slot)
        self.dead_unreleased.discard(slot)
        entry = self.status.workers[slot]
        # The new attempt's worker starts by folding what the slot committed.
        claims.fold(self.status, entry)
        self.live[slot] = Worker(slot, entry.attempt)

    @precondition(lambda self: bool(self.zombies))
    @rule(data=st.data())
    def zombie_writes(self, data: st.DataObject) -> None:
        zombie = data.draw(st.sampled_from(self.zombies))
        if zombie.attempt == self.status.workers[zombie.slot].attempt:
            return  # not replaced yet: still the slot's own attempt
        before = copy.deepcopy(self.status)
        for change in (
            lambda s: claims.record(
                s,
                zombie.slot,
                zombie.attempt,
                done=IndexSet.parse(f"0-{TOTAL - 1}"),
                tokens=0,
                cost_usd=0,
                inflight=None,
                what="b",
            ),
            lambda s: claims.claim_next(
                s, zombie.slot, zombie.attempt, total=TOTAL, size=SIZE, what="b"
            ),
        ):
            assert not self._write(zombie, change)
        assert self.status == before

    # -- what must hold after every step

    @invariant()
    def no_item_is_held_by_two_slots_or_held_when_done_elsewhere(self) -> None:
        held = IndexSet()
        folded = IndexSet.parse(self.status.checkpoint.completed)
        for entry in self.status.workers:
            chunk = IndexSet.parse(entry.claim)
            others = [IndexSet.parse(o.done) for o in self.status.workers if o is not entry]
            for index in chunk:
                assert index not in held, f"item {index} claimed twice"
                assert index not in folded, f"item {index} claimed though done"
                assert all(index not in d for d in others), f"item {index} done by another"
            held.update(chunk)

    @invariant()
    def live_workers_never_share_an_item(self) -> None:
        seen: dict[int, int] = {}
        for worker in self.live.values():
            if worker.slot in self.dead_unreleased:
                continue
            for index in worker.chunk:
                assert index not in seen, f"item {index} in slots {seen[index]} and {worker.slot}"
                seen[index] = worker.slot

    @invariant()
    def nothing_saved_is_lost(self) -> None:
        done = claims.done_items(self.status)
        missing = self.saved.difference(done)
        assert not len(missing), f"saved items {missing} no longer done"

    def teardown(self) -> None:
        """Drain: the dead are replaced, every worker works to the end of the pool."""
        for slot in sorted(self.dead_unreleased):
            claims.release(self.status, slot)
            entry = self.status.workers[slot]
            claims.fold(self.status, entry)
            self.live[slot] = Worker(slot, entry.attempt)
        self.dead_unreleased.clear()
        for _ in range(TOTAL * 4):
            for worker in self.live.values():
                while worker.chunk:
                    worker.mine.add(worker.chunk.pop(0))
                if not worker.finished:
                    self.claim_for(worker)
            if all(w.finished for w in self.live.values()):
                break
        assert all(w.finished for w in self.live.values())
        assert str(claims.done_items(self.status)) == f"0-{TOTAL - 1}"
        assert claims.pool_empty(self.status, TOTAL)

    def claim_for(self, worker: Worker) -> None:
        status = self.status
        entry = claims.slot_of(status, worker.slot, worker.attempt, "b")
        entry.done = str(worker.mine.difference(worker.folded))
        chunk = claims.claim_next(
            status, worker.slot, worker.attempt, total=TOTAL, size=SIZE, what="b"
        )
        worker.folded = worker.mine.copy()
        worker.chunk = list(range(chunk[0], chunk[1] + 1)) if chunk else []
        worker.finished = chunk is None


ClaimProtocol.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_claims_commits_deaths_and_operator_replays_in_any_order = ClaimProtocol.TestCase
