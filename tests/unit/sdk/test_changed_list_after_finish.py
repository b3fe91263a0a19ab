"""A worker whose second item list differs from the finished first one fails the batch.

The first list's end writes a finished checkpoint, which the operator (and
`resumable run`) takes as every item done whatever the exit. A second
``run.items()`` with another list raises FingerprintMismatchError: the worker
must then exit non-zero and the batch must not be reported Succeeded. Run
through the real `resumable run` with a subprocess worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from runkit import MakeRun

from resumable import FingerprintMismatchError

RESUMABLE = Path(sys.executable).parent / "resumable"

WORKER = """\
import resumable
run = resumable.start()
for item in run.items(["a", "b", "c"]):
    with item:
        pass
for item in run.items(["x", "y"]):
    with item:
        pass
"""


def manifest(worker: Path) -> dict[str, Any]:
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "two-lists"},
        "spec": {
            "retry": {"maxRestarts": 1, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": [sys.executable, str(worker)],
                        }
                    ]
                }
            },
        },
    }


def test_a_changed_second_list_after_the_first_finished_fails_the_batch(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    path = tmp_path / "batch.yaml"
    path.write_text(yaml.safe_dump(manifest(worker)))
    state = tmp_path / "state"
    result = subprocess.run(
        [str(RESUMABLE), "run", str(path), "--state-dir", str(state)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "FingerprintMismatchError" in output  # the worker's own traceback
    assert "Failed: 3/3 items" in result.stdout
    status = json.loads((state / "status.json").read_text())
    assert status["phase"] == "Failed", output
    assert status["checkpoint"]["finished"] is False
    assert "item list changed" in status["checkpoint"]["lastError"]


def test_a_changed_second_list_leaves_the_checkpoint_unfinished_with_the_error(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    for item in run.items(["a", "b", "c"]):
        with item:
            pass
    assert run.summary().finished
    with pytest.raises(FingerprintMismatchError):
        next(iter(run.items(["x", "y"])))
    checkpoint = json.loads((store_dir / "status.json").read_text())["checkpoint"]
    assert checkpoint["finished"] is False
    assert checkpoint["completed"] == "0-2"
    assert "item list changed" in checkpoint["lastError"]
    assert not run.summary().finished


def test_a_changed_second_list_is_refused_in_a_run_that_started_over_from_a_finished_one(
    make_run: MakeRun, store_dir: Path
) -> None:
    for _ in range(2):  # the second run starts over on the first's finished checkpoint
        run = make_run()
        for item in run.items(["a", "b", "c"]):
            with item:
                pass
    # Before, its items 1-2 were skipped as done (the first list's), with no error.
    with pytest.raises(FingerprintMismatchError):
        next(iter(run.items(["x", "y"])))
