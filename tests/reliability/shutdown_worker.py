"""A kube-store worker whose loop is at module level, as in a plain script.

Its item iterator lives on the module's frame, so when SIGTERM's exception
unwinds the script the loop's ``finally`` makes the exit write, before the
atexit hook (tests/workers.py keeps its iterator alive to exercise the other
order). Settings come from ``RESUMABLE_*`` as in a pod; ``WORKER_ITEMS`` items
(default 100000) of ``WORKER_DELAY`` seconds (default 0.05) each, whose output is
their index. Each event is one line in ``WORKER_LOG`` with the
``time.monotonic()`` it happened at: ``begin <resumed_from>``, ``start <index>``,
``commit <index>`` (its ``with item:`` block ended), ``end``.
"""

import os
import time

import resumable

_fd = os.open(os.environ["WORKER_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def log(event: str) -> None:
    os.write(_fd, f"{event} {time.monotonic():.3f}\n".encode())


run = resumable.start()
log(f"begin {run.resumed_from}")
delay = float(os.environ.get("WORKER_DELAY", "0.05"))
for item in run.items(range(int(os.environ.get("WORKER_ITEMS", "100000")))):
    with item:
        log(f"start {item.index}")
        time.sleep(delay)
        item.output = item.index
    log(f"commit {item.index}")
log("end")
