"""A usage error ends the worker with EXIT_USAGE and fails the batch at once (issue 21).

A changed item list or a run.context over its budget fails every attempt the same
way; the batch used to be retried maxRestarts times and end as a poison item or
MaxRestartsExceeded. Now the SDK saves the error in the checkpoint and exits
EXIT_USAGE, and `resumable run` (deciding as the operator does) fails the batch
with reason UsageError and that cause, without another attempt. Real `resumable
run`, real worker subprocesses, real files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from resumable.constants import EXIT_USAGE

RESUMABLE = Path(sys.executable).parent / "resumable"

#: Attempt 1 does two items, changes the list in its file and dies (exit 3);
#: attempt 2 reads the changed list.
CHANGED_LIST = """\
import json, os, sys
import resumable
items = json.loads(open("items.json").read())
run = resumable.start()
for item in run.items(items):
    with item:
        item.output = item.value
    if item.index == 1 and run.attempt == 1:
        open("items.json", "w").write(json.dumps(items + ["new"]))
        sys.exit(3)
"""

CONTEXT_OVER_BUDGET = """\
import resumable
run = resumable.start()
for item in run.items(range(5)):
    with item:
        if item.index == 2:
            run.context["notes"] = "x" * 10_000
"""


def run_batch(tmp_path: Path, worker: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    (tmp_path / "worker.py").write_text(worker)
    (tmp_path / "items.json").write_text(json.dumps(["a", "b", "c", "d"]))
    manifest = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "misuse"},
        "spec": {
            "checkpoint": {"everyItems": 1, "minIntervalSeconds": 0},
            "retry": {"maxRestarts": 5, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "worker", "command": ["python", "worker.py"]},
                    ]
                }
            },
        },
    }
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(manifest))
    result = subprocess.run(
        [str(RESUMABLE), "run", "batch.yaml", "--state-dir", "state"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig"},
    )
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    return result, status


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Failed")


def test_a_changed_item_list_fails_the_batch_at_once_with_the_cause(tmp_path: Path) -> None:
    result, status = run_batch(tmp_path, CHANGED_LIST)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    failed = failed_condition(status)
    assert (failed["status"], failed["reason"]) == ("True", "UsageError"), output
    assert failed["message"].startswith(
        f"Attempt 2 ended with exit {EXIT_USAGE} (a usage error); not retried: "
        "FingerprintMismatchError: "
    )
    assert "the item list changed since the checkpoint was written" in failed["message"]
    assert status["restarts"] == 1  # attempt 1's exit 3 only: attempt 2 was not retried
    assert status["checkpoint"]["completed"] == "0-1"  # the work done stays
    assert "lastErrorIndex" not in status["checkpoint"]  # the run's error, no item's
    assert f"resumable: a usage error: exit {EXIT_USAGE}, which is not retried" in output
    assert "misuse-3" not in output  # no third attempt


def test_a_context_over_its_budget_fails_the_batch_at_once_with_the_cause(tmp_path: Path) -> None:
    result, status = run_batch(tmp_path, CONTEXT_OVER_BUDGET)
    output = result.stdout + result.stderr
    failed = failed_condition(status)
    assert (failed["status"], failed["reason"]) == ("True", "UsageError"), output
    assert "not retried: UsageError: run.context is" in failed["message"]
    assert "over the 4096-byte limit" in failed["message"]
    assert status["restarts"] == 0
    assert status["checkpoint"]["completed"] == "0-1"  # saved before the bad write
    assert "misuse-2" not in output
    assert "exit checkpoint was not saved" not in output  # said once, not again at exit
