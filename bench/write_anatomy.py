"""Where the time of one every-item checkpoint write goes. Run by hand, never a test.

    .venv/bin/python bench/write_anatomy.py          # about 10 s; last line is JSON

Runs phases (c) and (d) of sdk_overhead.py (SDK writes at ``everyItems: 1`` in
turn with raw temp+fsync+rename+dir-fsync replaces) with each os call the two
sides make timed, and prints per write: the median of every call on each side,
each side's whole write, and the SDK's time outside system calls (the lock is
a call: flock; what remains is Python). A timing wrapper costs both sides about
the same, a microsecond or so per call, so the absolute figures run a little
high; the differences are what to read.

Then it times a rename over an existing file two ways: with the replaced file
closed (the kernel frees its inode inside the rename) and held open (freed at
the close instead), which shows how much of a rename is that freeing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sdk_overhead  # the phases measured here

CALLS = ("open", "write", "fsync", "replace", "close", "stat", "fstat")
RAW_FRAME = "raw_write"


@contextlib.contextmanager
def timed_calls() -> Iterator[dict[tuple[str, str], list[int]]]:
    """Time os calls (and flock) while inside, by side: "raw" from raw_write, else "sdk"."""
    times: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    originals: list[tuple[Any, str, Callable[..., Any]]] = [
        (os, name, getattr(os, name)) for name in CALLS
    ]
    originals.append((fcntl, "flock", fcntl.flock))

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return real(*args, **kwargs)
            finally:
                took = time.perf_counter_ns() - start
                side = "raw" if sys._getframe(1).f_code.co_name == RAW_FRAME else "sdk"
                times[(side, name)].append(took)

        return timed

    for module, name, real in originals:
        setattr(module, name, wrap(name, real))
    try:
        yield times
    finally:
        for module, name, real in originals:
            setattr(module, name, real)


def rename_freeing(directory: Path, count: int) -> tuple[float, float, float]:
    """Median us of: a rename over a closed file, over a held one, and closing the held one."""
    directory.mkdir(parents=True)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    data = b"x" * 512
    plain: list[int] = []
    held: list[int] = []
    closing: list[int] = []
    try:
        for index in range(2 * count):
            hold = index % 2 == 1
            fd = os.open("t.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=dir_fd)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            old = os.open("s.json", os.O_RDONLY, dir_fd=dir_fd) if index and hold else None
            start = time.perf_counter_ns()
            os.replace("t.tmp", "s.json", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            took = time.perf_counter_ns() - start
            os.fsync(dir_fd)
            if old is not None:
                start = time.perf_counter_ns()
                os.close(old)
                closing.append(time.perf_counter_ns() - start)
                held.append(took)
            elif index:
                plain.append(took)
    finally:
        os.close(dir_fd)
    return (statistics.median(plain) / 1e3, statistics.median(held) / 1e3,
            statistics.median(closing) / 1e3)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description="Anatomy of an every-item checkpoint write.")
    parser.add_argument("--writes", type=int, default=300, help="writes per round (300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument(
        "--dir", type=Path, default=sdk_overhead.HERE / "out", help="disk under test (bench/out)"
    )
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="anatomy-", dir=args.dir))
    totals: dict[str, list[float]] = {"sdk": [], "raw": []}
    try:
        with timed_calls() as times:
            for round_no in range(args.rounds):
                sdk_rate, raw_rate, _ = sdk_overhead.paired_writes(
                    root / f"round{round_no}", args.writes
                )
                totals["sdk"].append(1e6 / sdk_rate)
                totals["raw"].append(1e6 / raw_rate)
        closed_us, held_us, close_us = rename_freeing(root / "rename", args.writes)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    writes = args.writes * args.rounds
    per_write = {
        key: sum(values) / writes / 1e3 for key, values in times.items()
    }  # us of each call, summed per write
    # Means per write (as per_write is), so the two can be subtracted.
    sdk_write = statistics.fmean(totals["sdk"])
    raw_write = statistics.fmean(totals["raw"])
    sdk_calls = sum(v for (side, _), v in per_write.items() if side == "sdk")
    header = ("call", "sdk med us", "sdk us/write", "raw med us", "raw us/write")
    print(f"{header[0]:<10} " + " ".join(f"{h:>12}" for h in header[1:]))
    for name in (*CALLS, "flock"):
        row = [name]
        for side in ("sdk", "raw"):
            values = times.get((side, name), [])
            row.append(f"{statistics.median(values) / 1e3:.1f}" if values else "-")
            row.append(f"{per_write[(side, name)]:.1f}" if values else "-")
        print(f"{row[0]:<10} " + " ".join(f"{cell:>12}" for cell in row[1:]))
    print(f"whole write, us: sdk {sdk_write:.1f}, raw {raw_write:.1f}, "
          f"sdk extra {sdk_write - raw_write:.1f}")  # fmt: skip
    print(
        f"sdk outside system calls (Python, and the timing wrapper's own cost), us per write: "
        f"{sdk_write - sdk_calls:.1f}"
    )
    print(f"rename over a closed file {closed_us:.1f} us; over a held one {held_us:.1f} us, "
          f"whose close then takes {close_us:.1f} us (freeing the replaced inode)")  # fmt: skip
    figures = {
        "sdk_write_us": round(sdk_write, 1),
        "raw_write_us": round(raw_write, 1),
        "sdk_extra_us": round(sdk_write - raw_write, 1),
        "sdk_python_us": round(sdk_write - sdk_calls, 1),
        "fsync_us": round(statistics.median(times[("raw", "fsync")]) / 1e3, 1),
        "rename_us": round(closed_us, 1),
        "rename_held_us": round(held_us, 1),
        "close_held_us": round(close_us, 1),
        "ratio_c_d": round(raw_write / sdk_write, 3),
    }
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
