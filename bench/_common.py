"""What the benches that start servers share: a work directory kept when something fails.

Imported by bench/recovery.py and bench/outage_throughput.py (as ``bench._common``,
with the repository root on sys.path).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
