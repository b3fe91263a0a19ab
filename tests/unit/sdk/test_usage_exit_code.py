"""The SDK's exit code: EXIT_USAGE for an uncaught UsageError, Python's own otherwise.

A worker process run by hand (a local store in RESUMABLE_DIR, no runner): the
operator and `resumable run` read the exit code, so it must be EXIT_USAGE exactly
when a usage error went uncaught, with the traceback printed as ever and the
exit hooks run (the checkpoint saved).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resumable.constants import EXIT_USAGE

WORKER = """\
import resumable
run = resumable.start("w")
for item in run.items(range(3)):
    with item:
        pass
{end}
"""


def run_worker(tmp_path: Path, end: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "worker.py").write_text(WORKER.format(end=end))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESUMABLE_")}
    return subprocess.run(
        [sys.executable, "worker.py"],
        cwd=tmp_path,
        env={**env, "RESUMABLE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("end", "code"),
    [
        ("raise resumable.UsageError('misused')", EXIT_USAGE),
        ("raise ValueError('a bug')", 1),
        ("try:\n    raise resumable.UsageError('x')\nexcept resumable.UsageError:\n    pass", 0),
        ("raise SystemExit(5)", 5),
    ],
    ids=["usage-error", "other-error", "usage-error-caught", "own-exit"],
)
def test_only_an_uncaught_usage_error_exits_with_exit_usage(
    tmp_path: Path, end: str, code: int
) -> None:
    result = run_worker(tmp_path, end)
    assert result.returncode == code, result.stderr
    checkpoint = json.loads((tmp_path / "state" / "status.json").read_text())["checkpoint"]
    if code == EXIT_USAGE:
        assert "Traceback" in result.stderr  # printed as ever
        assert checkpoint["lastError"] == "UsageError: misused"
        assert checkpoint["finished"] is False
    else:
        assert checkpoint["finished"] is True
        assert checkpoint["lastError"] == ""
