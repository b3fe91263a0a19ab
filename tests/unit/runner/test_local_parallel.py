"""`resumable run` with spec.parallelism > 1: several worker processes, one decision core.

The worker is tests/parallel_worker.py, which logs every execution with its slot
and attempt; the runner is the real LocalRunner with real subprocesses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from parallel_worker import SCRIPT, executions, overlapping

from resumable.v1alpha1 import ResumableBatch
from resumable_runner.runner import LocalRunner


def local_batch(tmp_path: Path, *, items: int, parallelism: int, **env: str) -> ResumableBatch:
    variables = {
        "WORKER_ITEMS": str(items),
        "WORKER_DELAY": "0.02",
        "WORKER_LOG": str(tmp_path / "executions.log"),
        **env,
    }
    body: dict[str, Any] = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "par"},
        "spec": {
            "parallelism": parallelism,
            "chunkSize": 5,
            "retry": {"maxItemAttempts": 2, "backoff": {"initialSeconds": 0}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "command": [sys.executable, str(SCRIPT)],
                            "env": [{"name": k, "value": v} for k, v in variables.items()],
                        }
                    ]
                }
            },
        },
    }
    return ResumableBatch.model_validate(body)


def outputs(state: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text())["output"] for p in sorted((state / "outputs").glob("*.json"))]


def test_four_local_workers_share_the_items_each_done_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = LocalRunner(local_batch(tmp_path, items=120, parallelism=4), state).run()
    assert result.phase == "Succeeded", [e.message for e in result.events]
    done = outputs(state)
    assert [o["index"] for o in done] == list(range(120))
    assert {o["slot"] for o in done} == {0, 1, 2, 3}  # every worker took chunks
    runs = executions(tmp_path / "executions.log")
    assert len(runs) == 120  # nothing ran twice
    assert not overlapping(runs, {})
    cp = result.status.checkpoint
    assert (cp.finished, cp.items_done, result.status.progress) == (True, 120, "120/120")


def test_retry_skipped_locally_runs_only_the_skipped_item(tmp_path: Path) -> None:
    state = tmp_path / "state"
    batch = local_batch(tmp_path, items=30, parallelism=3, WORKER_POISON="7")
    first = LocalRunner(batch, state).run()
    assert first.phase == "Succeeded"
    assert [s.index for s in first.status.skipped] == [6]
    ran = len(executions(tmp_path / "executions.log"))
    # The poison fixed in the manifest, and a new retrySkipped value.
    fixed = local_batch(tmp_path, items=30, parallelism=3)
    fixed.spec.retry_skipped = "fixed"
    again = LocalRunner(fixed, state).run()
    assert again.phase == "Succeeded", [e.message for e in again.events]
    assert again.status.skipped == []
    assert [r.index for r in executions(tmp_path / "executions.log")[ran:]] == [6]
    assert [o["index"] for o in outputs(state)] == list(range(30))
