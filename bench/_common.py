"""What the benches that start servers share: a work directory kept when something
fails, percentiles, a plain table, and the API server's request counts.

Imported by bench/recovery.py, bench/outage_throughput.py, bench/operator_scale.py and
bench/wasted_work.py (as ``bench._common``, with the repository root on sys.path).
The pure helpers are unit-tested (tests/unit/test_bench_common.py).
"""

from __future__ import annotations

import math
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The verbs of apiserver_request_total that change something.
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

#: (verb, resource, subresource) of one kind of request, as the API server counts it.
RequestKind = tuple[str, str, str]


@contextmanager
def work_directory(prefix: str, *, keep: bool, logs: str) -> Iterator[Path]:
    """A fresh temporary directory for one run's servers and logs, removed at the end.

    Its path is printed first; it is kept, and said so on stderr with what to look at
    (``logs``), when ``keep`` is set or the run raised.
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"work directory (logs): {workdir}", flush=True)
    ok = False
    try:
        yield workdir
        ok = True
    finally:
        if keep or not ok:
            print(f"kept {workdir} ({logs})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned.

    Floats are shown with up to three decimals (no trailing zeros past one).
    """

    def cell(value: object) -> str:
        if isinstance(value, float):
            text = f"{value:.3f}".rstrip("0")
            return text + "0" if text.endswith(".") else text
        return str(value)

    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [row[0].ljust(widths[0])]
        parts += [text.rjust(width) for text, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def request_counts(metrics: str) -> Counter[RequestKind]:
    """apiserver_request_total from the API server's /metrics text, summed over
    codes and scopes, by (verb, resource, subresource)."""
    counts: Counter[RequestKind] = Counter()
    for line in metrics.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] += int(float(match.group(2)))
    return counts


def writes(counts: Counter[RequestKind]) -> int:
    """How many of the counted requests changed something (POST, PUT, PATCH, DELETE)."""
    return sum(n for (verb, _, _), n in counts.items() if verb in WRITE_VERBS)
