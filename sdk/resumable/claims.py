"""The chunk-claim protocol of parallel workers (``spec.parallelism`` > 1).

Pure functions over a :class:`~resumable.v1alpha1.ResumableBatchStatus`, shared by
the SDK's stores (a worker claims chunks and records its progress), the decision
logic (a slot's end returns its claim to the pool) and the CLI (progress). The
stores make each call atomic: the local store under its file lock, the
Kubernetes store as one JSON patch fenced by the slot's attempt and, when it
rewrites the checkpoint (a claim), by the checkpoint as it was read.

The rules (docs/design.md, "Parallel workers"):

* an item is *done* when it is in ``checkpoint.completed`` or in a slot's ``done``;
  it is *taken* when it is done, skipped, or inside a slot's ``claim``;
* the pool is every index below the item count that is not taken; a claim is the
  run of free indices from the pool's lowest one, at most a chunk long;
* a worker claims its next chunk in the same write that folds its ``done`` (and
  its tokens and cost) into the checkpoint, so a chunk boundary costs one write;
  every claim bumps ``checkpoint.claims``, so of two claims that read the same
  checkpoint only the first is stored, and a worker's progress writes (its own
  slot only) never make a claim try again;
* every write of a worker tests its slot's ``attempt``; whoever ends an attempt
  (the operator, the local runner) bumps it in the same write that returns the
  claim to the pool, so a zombie of that attempt can neither commit nor claim.
"""

from __future__ import annotations

from resumable.errors import FencedError
from resumable.ranges import IndexSet
from resumable.v1alpha1 import ResumableBatchStatus, WorkerSlot

#: The largest chunk chosen by default: small enough that a worker's death
#: returns little to the pool and a straggler holds little at the end.
MAX_DEFAULT_CHUNK = 100
#: Chunks per worker the default aims at, so fast workers can take more.
CHUNKS_PER_WORKER = 10


def default_chunk_size(total: int, parallelism: int) -> int:
    """The chunk size when spec.chunkSize is unset: about a tenth of a worker's share."""
    share = total // max(1, parallelism * CHUNKS_PER_WORKER)
    return max(1, min(MAX_DEFAULT_CHUNK, share))


def done_items(status: ResumableBatchStatus) -> IndexSet:
    """Every item completed: folded into the checkpoint or still in a slot's ``done``."""
    done = IndexSet.parse(status.checkpoint.completed)
    for slot in status.workers:
        if slot.done:
            done.update(IndexSet.parse(slot.done))
    return done


def taken_items(status: ResumableBatchStatus) -> IndexSet:
    """Items not in the pool: done, skipped, or claimed by a slot."""
    taken = done_items(status)
    for skipped in status.skipped:
        taken.add(skipped.index)
    for slot in status.workers:
        if slot.claim:
            taken.update(IndexSet.parse(slot.claim))
    return taken


def free_chunk(status: ResumableBatchStatus, total: int, size: int) -> tuple[int, int] | None:
    """The next claim: (first, last) of the free run at the pool's lowest index, at most
    ``size`` long; None when the pool is empty."""
    taken = taken_items(status)
    first = taken.first_missing(0)
    if first >= total:
        return None
    last = first
    limit = min(total, first + size) - 1
    while last < limit and last + 1 not in taken:
        last += 1
    return first, last


def pool_empty(status: ResumableBatchStatus, total: int | None) -> bool:
    """True when no item is left to claim (the item count known)."""
    return total is not None and free_chunk(status, total, 1) is None


def slot_of(status: ResumableBatchStatus, slot: int, attempt: int, what: str) -> WorkerSlot:
    """The slot's entry, checked to belong to ``attempt`` (else FencedError)."""
    if slot >= len(status.workers) or status.workers[slot].slot != slot:
        raise FencedError(
            f"{what}: worker slot {slot} does not exist (parallelism changed or the run was "
            "restarted); this worker stops without writing"
        )
    entry = status.workers[slot]
    if entry.attempt != attempt:
        raise FencedError(
            f"{what}: slot {slot}'s attempt {attempt} was replaced by attempt {entry.attempt}; "
            "this worker stops without writing"
        )
    return entry


def fold(status: ResumableBatchStatus, entry: WorkerSlot) -> None:
    """Move a slot's done items, tokens and cost into the checkpoint."""
    cp = status.checkpoint
    if entry.done:
        completed = IndexSet.parse(cp.completed)
        completed.update(IndexSet.parse(entry.done))
        cp.completed = str(completed)
    cp.tokens += entry.tokens
    cp.cost_usd = round(cp.cost_usd + entry.cost_usd, 6)
    entry.done, entry.tokens, entry.cost_usd = "", 0, 0.0
    cp.items_done = len(IndexSet.parse(cp.completed))


def record(
    status: ResumableBatchStatus,
    slot: int,
    attempt: int,
    *,
    done: IndexSet,
    tokens: int,
    cost_usd: float,
    inflight: int | None,
    what: str,
) -> WorkerSlot:
    """A worker's progress write: its unfolded done items, usage and in-flight item."""
    entry = slot_of(status, slot, attempt, what)
    entry.done = str(done)
    entry.tokens = tokens
    entry.cost_usd = round(cost_usd, 6)
    entry.inflight = inflight
    return entry


def claim_next(
    status: ResumableBatchStatus,
    slot: int,
    attempt: int,
    *,
    total: int,
    size: int,
    what: str,
) -> tuple[int, int] | None:
    """Fold the slot's done items and claim its next chunk (None: the pool is empty).

    The slot's previous claim is given up (its items are done by now, or were
    skipped); a slot that finds the pool empty is marked idle.
    """
    entry = slot_of(status, slot, attempt, what)
    fold(status, entry)
    entry.claim = ""
    entry.inflight = None
    status.checkpoint.total_items = total
    status.checkpoint.claims = (status.checkpoint.claims or 0) + 1
    chunk = free_chunk(status, total, size)
    entry.claim = "" if chunk is None else _text(chunk)
    entry.idle = chunk is None
    return chunk


def held(entry: WorkerSlot) -> tuple[int, int] | None:
    """The chunk a slot holds, as :func:`claim_next` returned it (None: none)."""
    spans = list(IndexSet.parse(entry.claim).spans())
    return (spans[0][0], spans[-1][1]) if spans else None


def release(status: ResumableBatchStatus, slot: int) -> None:
    """The slot's attempt ended: return its claim to the pool and bump its attempt, so
    nothing of the old one can write again.

    What it committed stays in the slot's ``done`` (done items, not in the pool):
    only workers write ``checkpoint.completed``, each in a write fenced by the
    object's version, so the slot's next attempt folds it in at its start.
    """
    entry = status.workers[slot]
    entry.claim = ""
    entry.inflight = None
    entry.attempt += 1
    entry.started = False


def position(entry: WorkerSlot) -> int | None:
    """Where a slot's attempt was: its in-flight item, else the first item of its claim
    it had not reported done (None when it held no claim)."""
    if entry.inflight is not None:
        return entry.inflight
    if not entry.claim:
        return None
    claim = IndexSet.parse(entry.claim)
    done = IndexSet.parse(entry.done)
    first = next(iter(claim))
    index = done.first_missing(first)
    return index if index in claim else None


def sole_unfinished(entry: WorkerSlot) -> int | None:
    """The one item of the slot's claim it had not reported done, if exactly one: a death
    then happened at that item."""
    if not entry.claim:
        return None
    left = IndexSet.parse(entry.claim).difference(IndexSet.parse(entry.done))
    return next(iter(left)) if len(left) == 1 else None


def progress_count(status: ResumableBatchStatus) -> int:
    """Items done in the run so far, across every worker."""
    if status.checkpoint.finished:
        return status.checkpoint.items_done
    return len(done_items(status))


def _text(chunk: tuple[int, int]) -> str:
    first, last = chunk
    return str(first) if first == last else f"{first}-{last}"
