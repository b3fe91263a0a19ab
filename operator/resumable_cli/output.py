"""The terminal side of the commands: the progress bar, aligned tables, item numbers.

A small helper in the manner of hatch's ``Terminal``: the commands
(:mod:`resumable_cli.run`, :mod:`~resumable_cli.status`,
:mod:`~resumable_cli.describe`, :mod:`~resumable_cli.logs`) print through it, so a
line written between redraws of the bar does not garble it.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from resumable import constants as names
from resumable.ranges import IndexSet
from resumable.v1alpha1 import ResumableBatchStatus
from resumable_core.progress import attempt_rate, items_saved, progress_text
from resumable_runner.runner import write_line

__all__ = ["ProgressBar", "duration", "one_based", "print_table", "table_lines", "write_line"]


class ProgressBar:
    """A one-line progress bar on a terminal; plain periodic lines otherwise."""

    def __init__(self, stream: TextIO, *, total: int | None, interval: float = 5.0) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self.interval = interval
        self.started = time.monotonic()
        self.last_line = 0.0
        self.first_done: int | None = None
        self.shown = False
        self.text = ""
        self.printed = ""

    def update(self, status: ResumableBatchStatus, live: dict[str, Any] | None = None) -> None:
        """Redraw from a status, and the running attempt's live count when there is one.

        ``live`` is what LocalStore.read_live_progress() read: the items the worker
        has done since its last checkpoint, shown with "(saved N)" beside them.
        """
        cp = status.checkpoint
        saved = items_saved(status)
        total = self.total if self.total is not None else cp.total_items
        now = time.monotonic()
        settled = status.phase in names.PHASES_AT_REST
        done, rate = saved, None
        if live is not None and live["attempt"] == cp.attempt and not cp.finished and not settled:
            done = max(saved, int(live["done"]))
            total = total if total is not None else live["total"]
            seconds = float(live["updated"]) - float(live["started"])
            if seconds > 0 and done > live["doneAtStart"]:
                rate = (int(live["done"]) - int(live["doneAtStart"])) / seconds
        if self.first_done is None:
            self.first_done = done
        elapsed = now - self.started
        if rate is None and elapsed >= 1.0 and done > self.first_done:
            rate = (done - self.first_done) / elapsed  # seen while watching
        if rate is None:
            rate = attempt_rate(status)  # as far as the attempt saved
        eta = ""
        if total is not None and rate and done < total and not settled:
            eta = f" eta {duration((total - done) / rate)}"
        width = 24
        frac = min(done / total, 1.0) if total else 0.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        unsaved = f" (saved {saved})" if saved != done else ""
        speed = f"{rate:5.1f}" if rate is not None else "    ?"
        self.text = (
            f"[{bar}] {progress_text(done, total)}{unsaved} {speed} items/s{eta} "
            f"restarts {status.restarts} ${cp.cost_usd:.4f}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.text)
            self.stream.flush()
            self.shown = True
        elif now - self.last_line >= self.interval:
            self.last_line = now
            self.printed = self.text
            write_line(self.stream, self.text)

    def line(self, text: str) -> None:
        """Print a line above the bar."""
        if self.tty and self.shown:
            self.stream.write("\r\x1b[2K")
        write_line(self.stream, text)
        if self.tty and self.shown:
            self.stream.write(self.text)
            self.stream.flush()

    def close(self) -> None:
        """Leave the bar's last state on its own line (piped: print it, if not printed yet)."""
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
        elif not self.tty and self.text and self.printed != self.text:
            self.printed = self.text
            write_line(self.stream, self.text)


def duration(seconds: float) -> str:
    """A short duration: "42s", "3m07s", "2h05m"."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def print_table(rows: list[list[str]], indent: str = "  ") -> None:
    """Rows in aligned columns two spaces apart; the last column (a message) is not padded."""
    for line in table_lines(rows, indent):
        print(line)


def table_lines(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """:func:`print_table`'s lines."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def one_based(completed: str) -> str:
    """Stored 0-based index ranges ("0-46,48") as the item numbers users see ("1-47,49")."""
    try:
        ranges = str(IndexSet.parse(completed))
    except ValueError:
        return completed  # not ours to fix here: show it as stored
    if not ranges:
        return "(none)"
    shifted = []
    for part in ranges.split(","):
        lo, sep, hi = part.partition("-")
        shifted.append(f"{int(lo) + 1}-{int(hi) + 1}" if sep else str(int(lo) + 1))
    return ",".join(shifted)
