"""wait_for: poll until a probe answers, or fail the test naming what never came.

The one wait every tier uses: the tests themselves, tests/integration/harness.py
and tests/kube/test_kubelet.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Call ``probe`` every ``every`` seconds until it returns something truthy; return that.

    After ``timeout`` seconds the test fails with ``what`` and the probe's last answer.
    Pass a small ``every`` (a few ms) where a moment must not be missed, such as a
    worker pausing inside a write; keep the default for probes that ask the API server.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what} (last: {last!r})"
            )
        time.sleep(every)
