"""`resumable outputs NAME --local`: what a local run stored, listed from its state directory.

The real LocalRunner runs tests/parallel_worker.py (two workers) with outputs in
the default place (the state directory) or in a volume's directory
(spec.outputs.directory, mapped under the state directory); the CLI's entry
point then lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resumable.v1alpha1 import ResumableBatch
from resumable_cli.app import main
from resumable_runner.runner import LocalRunner
from tests.unit.runner.test_local_parallel import local_batch


def listed(capsys: pytest.CaptureFixture[str], state: Path) -> list[int]:
    capsys.readouterr()
    assert main(["outputs", "par", "--state-dir", str(state)]) == 0
    return [json.loads(line)["index"] for line in capsys.readouterr().out.splitlines()]


def test_outputs_of_a_local_run_are_listed_in_item_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    result = LocalRunner(local_batch(tmp_path, items=30, parallelism=2), state).run()
    assert result.phase == "Succeeded"
    assert listed(capsys, state) == list(range(30))


def test_outputs_in_a_volume_directory_are_found_under_the_state_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = local_batch(tmp_path, items=12, parallelism=2).to_manifest()
    body["spec"]["outputs"] = {"directory": {"path": "/data/out"}}
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}
    ]
    batch = ResumableBatch.model_validate(body)
    state = tmp_path / "state"
    assert LocalRunner(batch, state).run().phase == "Succeeded"
    assert len(list((state / "volumes/data/out/outputs").glob("*.json"))) == 12
    assert listed(capsys, state) == list(range(12))
