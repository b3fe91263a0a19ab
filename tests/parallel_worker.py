"""A parallel worker for the tests of spec.parallelism > 1, and what the tests read back.

Run as a script by a pod (or by ``resumable run``), it processes ``WORKER_ITEMS``
items through the SDK, which hands it the chunks its slot claims. Every output
records the slot and attempt that wrote it, and every execution is logged to an
append-only file shared by all workers (one unbuffered ``write`` per line, so a
SIGKILL never leaves half a line):

``start <index> <slot> <attempt> <time>`` and ``commit <index> <slot> <attempt> <time>``,
with ``time.time()``, so a test can check that no item ran in two live workers at once.

Settings: ``WORKER_ITEMS`` (default 200), ``WORKER_DELAY`` (seconds per item,
default 0.01), ``WORKER_LOG`` (required), ``WORKER_POISON`` (1-based item that
kills its worker every time), and the SDK's own ``RESUMABLE_*``.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve()
SDK = SCRIPT.parents[1] / "sdk"


@dataclass(frozen=True)
class Execution:
    """One item as one attempt ran it: started, and committed if it got that far."""

    index: int
    slot: int
    attempt: int
    started: float
    committed: float | None


def executions(log: Path) -> list[Execution]:
    """Every execution in the shared log, in the order they started."""
    starts: dict[tuple[int, int, int], float] = {}
    commits: dict[tuple[int, int, int], float] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            key = (int(parts[1]), int(parts[2]), int(parts[3]))
            (starts if parts[0] == "start" else commits)[key] = float(parts[4])
    runs = [Execution(i, s, a, t, commits.get((i, s, a))) for (i, s, a), t in starts.items()]
    return sorted(runs, key=lambda e: e.started)


def overlapping(runs: list[Execution], ended: dict[tuple[int, int], float]) -> list[str]:
    """Items two live attempts worked on at once: an execution that started before an
    earlier one of the same item had ended (committed, or its attempt's pod ended
    at the time ``ended`` gives for (slot, attempt))."""
    by_item: dict[int, list[Execution]] = defaultdict(list)
    for run in runs:
        by_item[run.index].append(run)
    clashes = []
    for index, tries in by_item.items():
        for earlier, later in itertools.pairwise(tries):
            over = earlier.committed or ended.get((earlier.slot, earlier.attempt), float("inf"))
            if later.started < over:
                clashes.append(
                    f"item {index}: slot {later.slot} attempt {later.attempt} started while "
                    f"slot {earlier.slot} attempt {earlier.attempt} still held it"
                )
    return clashes


def _main() -> int:
    sys.path.insert(0, str(SDK))
    import resumable

    items = int(os.environ.get("WORKER_ITEMS", "200"))
    delay = float(os.environ.get("WORKER_DELAY", "0.01"))
    poison = int(os.environ.get("WORKER_POISON", "0") or 0)
    slot = int(os.environ.get("RESUMABLE_WORKER_SLOT", "0"))
    attempt = int(os.environ.get("RESUMABLE_ATTEMPT", "0"))
    log_fd = os.open(os.environ["WORKER_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(kind: str, index: int) -> None:
        os.write(log_fd, f"{kind} {index} {slot} {attempt} {time.time():.6f}\n".encode())

    run = resumable.start()
    for item in run.items([f"doc-{i}" for i in range(items)]):
        with item:
            log("start", item.index)
            if item.number == poison:
                os._exit(137)
            time.sleep(delay)
            item.output = {"index": item.index, "slot": slot, "attempt": attempt}
        log("commit", item.index)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
