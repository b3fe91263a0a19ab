"""In a cluster as with `resumable run`: usage errors and commands that cannot start (issue 21).

The real operator (a subprocess), the real API server, pods run by the process
kubelet with the SDK's kube store. A worker whose item list changed exits 64 and
the batch fails at once (UsageError, the cause the worker saved); a command the
runtime cannot exec fails it at once (StartFailed, the runtime's message); a
container string over what exec takes is refused by the CRD when the batch is
created, naming the field, as `resumable run` refuses it
(tests/unit/runner/test_usage_exit.py, test_command_checks.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from resumable.constants import EXIT_USAGE
from resumable.kubeapi import ApiError
from resumable.v1alpha1 import MAX_EXEC_STRING_BYTES
from tests.integration.harness import Batches

#: Attempt 1 does two items, changes the list in its file and dies (exit 3);
#: attempt 2 reads the changed list.
CHANGED_LIST = """\
import json, sys
import resumable
path = sys.argv[1]
items = json.loads(open(path).read())
run = resumable.start()
for item in run.items(items):
    with item:
        pass
    if item.index == 1 and run.attempt == 1:
        open(path, "w").write(json.dumps(items + ["new"]))
        sys.exit(3)
"""


def batch(name: str, command: list[str], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "checkpoint": {"everyItems": 1, "minIntervalSeconds": 0},
            "retry": {"maxRestarts": 5, "backoff": {"initialSeconds": 0, "maxSeconds": 0}},
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": command,
                            **container,
                        }
                    ],
                }
            },
        },
    }


@pytest.mark.usefixtures("operator")
def test_a_changed_item_list_fails_the_batch_at_once_with_the_cause(
    batches: Batches, tmp_path: Path
) -> None:
    worker, items = tmp_path / "worker.py", tmp_path / "items.json"
    worker.write_text(CHANGED_LIST)
    items.write_text(json.dumps(["a", "b", "c", "d"]))
    batches.create(batch("changed", [sys.executable, str(worker), str(items)]))
    status = batches.wait_ended("changed")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "UsageError"), status
    assert failed["message"].startswith(
        f"Attempt 2 ended with exit {EXIT_USAGE} (a usage error); not retried: "
        "FingerprintMismatchError: "
    )
    assert status["restarts"] == 1  # attempt 1's exit 3: attempt 2 was not retried
    assert status["checkpoint"]["completed"] == "0-1"
    assert [p["metadata"]["name"] for p in batches.pods("changed")] == ["changed-1", "changed-2"]


@pytest.mark.usefixtures("operator")
def test_a_command_the_runtime_cannot_exec_fails_the_batch_at_once(batches: Batches) -> None:
    batches.create(batch("noexec", ["/no/such/worker"]))
    status = batches.wait_ended("noexec")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "StartFailed"), status
    assert failed["message"] == (
        "Attempt 1's worker noexec-1 could not start (exit 128 (StartError)): "
        "exec: '/no/such/worker': No such file or directory; not retried: "
        "fix spec.template.spec.containers[0]"
    )
    assert status["restarts"] == 0
    assert [p["metadata"]["name"] for p in batches.pods("noexec")] == ["noexec-1"]


def test_an_env_value_over_what_exec_takes_is_refused_when_the_batch_is_created(
    batches: Batches,
) -> None:
    env = [{"name": "BIG", "value": "x" * (MAX_EXEC_STRING_BYTES + 1)}]
    with pytest.raises(ApiError) as refused:
        batches.create(batch("bigenv", ["true"], env=env))
    assert refused.value.status == 422
    assert "spec.template.spec.containers[0].env[0].value" in str(refused.value)
    assert f"{MAX_EXEC_STRING_BYTES}" in str(refused.value)
