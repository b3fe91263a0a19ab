"""A kube-store worker for the outage tests: fixed-length items, every event timed.

As ``shutdown_worker.py`` (its loop at module level, settings from ``RESUMABLE_*``
as in a pod): ``WORKER_ITEMS`` items (default 100000) of ``WORKER_DELAY`` seconds
(default 0.05) of sleep each, so its rate does not hang on the CPU it gets; the
output of an item is its index. ``WORKER_GRACE``, when set, replaces
``resumable._policy.UNSAVED_GRACE_SECONDS`` (how long items go on while writes
fail), so a test reaches the limit in seconds. Each event is one line in
``WORKER_LOG`` with the ``time.monotonic()`` it happened at: ``begin
<resumed_from>``, ``start <index>``, ``commit <index>`` (its ``with item:`` block
ended, its checkpoint write, if one was due, done), ``end``.
"""

import os
import time

import resumable
from resumable import _policy

_fd = os.open(os.environ["WORKER_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def log(event: str) -> None:
    os.write(_fd, f"{event} {time.monotonic():.3f}\n".encode())


if os.environ.get("WORKER_GRACE"):
    _policy.UNSAVED_GRACE_SECONDS = float(os.environ["WORKER_GRACE"])

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
