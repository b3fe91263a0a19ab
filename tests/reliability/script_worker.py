"""A kube-store worker written as a plain script: its loop at module level, every event timed.

Run by the reliability tests (test_kube_shutdown.py, test_outage_throughput.py)
and bench/outage_throughput.py. Its item iterator lives on the module's frame,
so when SIGTERM's exception unwinds the script the loop's ``finally`` makes the
exit write, before the atexit hook (tests/workers.py keeps its iterator alive to
exercise the other order). Settings come from ``RESUMABLE_*`` as in a pod;
``WORKER_ITEMS`` items (default 100000) of ``WORKER_DELAY`` seconds (default
0.05) of sleep each, so its rate does not hang on the CPU it gets; the output of
an item is its index. ``WORKER_GRACE``, when set, replaces
``resumable._policy.UNSAVED_GRACE_SECONDS`` (how long items go on while writes
fail), so a test reaches that limit in seconds. Each event is one line in
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
