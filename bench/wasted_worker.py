"""The worker of bench/wasted_work.py: items of a given cost, and a death at given items.

Run by the process kubelet as the batch's container (never by hand). Reads

  WASTED_COSTS    a JSON file: one [seconds, input tokens, output tokens] per item
                  (seconds already time-scaled)
  WASTED_FAIL_AT  comma-separated item indices: the first time one is worked on,
                  the worker SIGKILLs itself half way through it (a marker file in
                  WASTED_MARKERS makes each failure happen once)
  WASTED_LOG      a file every attempt appends to: ``begin <attempt> <time>``,
                  ``done <index>`` and ``killed <index>`` lines

and runs the items through the SDK (``resumable.start()``; the policy comes from
spec.checkpoint as the operator passes it), recording each item's usage.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

#: US dollars per million tokens, input and output: the bench's price list.
PRICE_IN_PER_M = 3.0
PRICE_OUT_PER_M = 15.0


def item_cost_usd(tokens_in: int, tokens_out: int) -> float:
    """What one item's tokens cost at the bench's prices."""
    return (tokens_in * PRICE_IN_PER_M + tokens_out * PRICE_OUT_PER_M) / 1e6


def append(log: Path, line: str) -> None:
    """One line, in one write (O_APPEND): attempts never interleave within a line."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def main() -> int:
    log = Path(os.environ["WASTED_LOG"])
    append(log, f"begin {os.environ.get('RESUMABLE_ATTEMPT', '?')} {time.time():.6f}")
    import resumable

    costs = json.loads(Path(os.environ["WASTED_COSTS"]).read_text())
    fail_at = {int(i) for i in os.environ.get("WASTED_FAIL_AT", "").split(",") if i}
    markers = Path(os.environ["WASTED_MARKERS"])
    run = resumable.start()
    for item in run.items(range(len(costs))):
        with item:
            seconds, tokens_in, tokens_out = costs[item.value]
            marker = markers / str(item.value)
            if item.value in fail_at and not marker.exists():
                marker.touch()
                time.sleep(seconds / 2)
                append(log, f"killed {item.value}")
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(seconds)
            item.add_usage(
                tokens=tokens_in + tokens_out, cost_usd=item_cost_usd(tokens_in, tokens_out)
            )
            append(log, f"done {item.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
